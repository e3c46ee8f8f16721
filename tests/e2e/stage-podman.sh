stage_podman() { :; }
