#!/usr/bin/env python3
"""Build a tiny container image from busybox-static, offline, as one tarball
that `ctr images import`, `docker load` and `podman load` all accept.

The tar carries both layouts over the same blobs:
  oci-layout, index.json, blobs/sha256/*   (OCI image layout)
  manifest.json, repositories              (docker save format)
Layer: /bin/busybox, applet symlinks, /etc/passwd and group, empty dirs.
Uncompressed layer, fixed mtimes: the same input gives the same digests.

usage: mkimage.py OUT.tar [--name xrun-e2e] [--tag latest] [--busybox /bin/busybox]
"""
import argparse
import hashlib
import io
import json
import sys
import tarfile

APPLETS = [
    "sh", "ash", "sleep", "cat", "echo", "top", "ps", "true", "false", "id", "ls",
    "kill", "env", "hostname", "grep", "head", "mount", "date", "wc", "test", "[",
    "uname", "pwd", "touch", "rm", "mkdir", "stat", "readlink", "tr", "trap",
]
DIRS = ["bin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var", "usr", "usr/bin"]
MTIME = 1700000000


def add_file(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = MTIME
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, name, mode=0o755):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = MTIME
    tar.addfile(info)


def layer_tar(busybox):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in DIRS:
            add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        with open(busybox, "rb") as f:
            add_file(tar, "bin/busybox", f.read(), 0o755)
        for applet in APPLETS:
            if applet == "trap":
                continue  # a shell builtin, listed only to document its use
            info = tarfile.TarInfo("bin/" + applet)
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            info.mode = 0o777
            info.mtime = MTIME
            tar.addfile(info)
        add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        add_file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--name", default="xrun-e2e")
    ap.add_argument("--tag", default="latest")
    ap.add_argument("--busybox", default="/bin/busybox")
    a = ap.parse_args()

    layer = layer_tar(a.busybox)
    layer_d = sha(layer)
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_d]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "tests/e2e/mkimage.py"}],
    }, sort_keys=True).encode()
    config_d = sha(config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + config_d, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": "sha256:" + layer_d, "size": len(layer)}],
    }, sort_keys=True).encode()
    manifest_d = sha(manifest)
    ref = "%s:%s" % (a.name, a.tag)
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + manifest_d, "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": "docker.io/library/" + ref,
                            "org.opencontainers.image.ref.name": a.tag},
        }],
    }, sort_keys=True).encode()
    docker_manifest = json.dumps([{
        "Config": "blobs/sha256/" + config_d,
        "RepoTags": [ref],
        "Layers": ["blobs/sha256/" + layer_d],
    }]).encode()
    repositories = json.dumps({a.name: {a.tag: layer_d}}).encode()

    with tarfile.open(a.out, "w", format=tarfile.PAX_FORMAT) as tar:
        add_file(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add_dir(tar, "blobs")
        add_dir(tar, "blobs/sha256")
        for d, data in ((layer_d, layer), (config_d, config), (manifest_d, manifest)):
            add_file(tar, "blobs/sha256/" + d, data)
        add_file(tar, "index.json", index)
        add_file(tar, "manifest.json", docker_manifest)
        add_file(tar, "repositories", repositories)
    print("image %s: manifest sha256:%s config sha256:%s layer sha256:%s" % (ref, manifest_d, config_d, layer_d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
