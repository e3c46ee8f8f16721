#!/bin/sh
# Compile time of Docker's default seccomp profile (as dockerd writes it in
# config.json): xrun's compiler against libseccomp, what runc and crun use.
# Needs gcc, libseccomp-dev, python3 and cargo. Usage: bench/seccomp-compile.sh [RUNS]
set -eu
runs=${1:-200}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
profile=$repo/src/seccomp/testdata/docker-default.json
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The profile flattened for the C program: one line per (rule, name).
python3 - "$profile" >"$work/profile.txt" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
def action(a, errno):
    e = 1 if errno is None else errno
    return {"SCMP_ACT_KILL": 0, "SCMP_ACT_KILL_THREAD": 0, "SCMP_ACT_KILL_PROCESS": 0x80000000,
            "SCMP_ACT_TRAP": 0x30000, "SCMP_ACT_ERRNO": 0x50000 | e, "SCMP_ACT_TRACE": 0x7ff00000 | e,
            "SCMP_ACT_LOG": 0x7ffc0000, "SCMP_ACT_ALLOW": 0x7fff0000, "SCMP_ACT_NOTIFY": 0x7fc00000}[a]
ops = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
       "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
arches = {"SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X86_64": 0xc000003e, "SCMP_ARCH_X32": 0x4000003e}
default = action(p["defaultAction"], p.get("defaultErrnoRet"))
listed = [arches[a] for a in p.get("architectures", []) if a in arches]
print(default, len(listed), *listed)
for s in p["syscalls"]:
    act = action(s["action"], s.get("errnoRet"))
    if act == default:
        continue  # runc skips these too
    args = s.get("args") or []
    flat = [x for a in args for x in (a["index"], ops[a["op"]], a["value"], a.get("valueTwo", 0))]
    for name in s["names"]:
        print(act, name, len(args), *flat)
PY

gcc -O2 -Wall -o "$work/seccomp-compile" "$here/seccomp-compile.c" -lseccomp
cd "$repo"
xrun=$(XRUN_BENCH_RUNS=$runs cargo test --release --bins bench_compile_docker_default -- --ignored --nocapture 2>/dev/null |
    grep '^xrun:')
echo "$xrun"
# runc's setting (binary tree) and libseccomp's default (linear, crun's).
"$work/seccomp-compile" "$work/profile.txt" "$runs" 2
"$work/seccomp-compile" "$work/profile.txt" "$runs" 1
