stage_docker() { :; }
