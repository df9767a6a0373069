#!/usr/bin/env python3
"""Writes the example OCI image layout in examples/images.

Two small images, made reproducibly (fixed times, no gzip timestamps) from
the package databases in tests/fixtures:

- example.test/debian:12-minbase: the database of a Debian 12 minbase
  system (96 packages), in two layers, the upper one replacing the dpkg
  status and whiting out a file of the lower one;
- example.test/alpine:3.11: an Alpine apk database of four packages.

Run from the repository root: python3 examples/make-images.py
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(ROOT, "examples", "images")


def fixture(*path):
    with open(os.path.join(FIXTURES, *path), "rb") as f:
        return f.read()


def layer(entries):
    """A gzip layer from (path, bytes | None for a dir | str for a symlink)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in entries:
            info = tarfile.TarInfo(path)
            info.mtime = 0
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def put(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(OUT, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest


def image(name, layers):
    blobs = [put(blob) for blob, _ in layers]
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": d, "size": len(b)} for (b, _), d in zip(layers, blobs)],
    }, sort_keys=True).encode()
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": put(manifest),
        "size": len(manifest),
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"org.opencontainers.image.ref.name": name},
    }


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(os.path.join(OUT, "blobs", "sha256"))
    minbase = "debian-bookworm-minbase"
    debian = image("example.test/debian:12-minbase", [
        layer([
            ("etc", None),
            ("etc/os-release", "../usr/lib/os-release"),
            ("etc/debian_version", fixture(minbase, "etc", "debian_version")),
            ("etc/motd", b"a file the upper layer removes\n"),
            ("usr", None), ("usr/lib", None),
            ("usr/lib/os-release", fixture(minbase, "usr", "lib", "os-release")),
            ("var", None), ("var/lib", None), ("var/lib/dpkg", None),
            ("var/lib/dpkg/status", b"Package: placeholder\nStatus: install ok installed\n"
                                    b"Version: 0\nArchitecture: amd64\n"),
        ]),
        layer([
            ("etc", None),
            ("etc/.wh.motd", b""),
            ("var", None), ("var/lib", None), ("var/lib/dpkg", None),
            ("var/lib/dpkg/status", fixture(minbase, "var", "lib", "dpkg", "status")),
        ]),
    ])
    alpine = image("example.test/alpine:3.11", [
        layer([
            ("etc", None),
            ("etc/os-release", fixture("os-release", "alpine_etc_os-release")),
            ("lib", None), ("lib/apk", None), ("lib/apk/db", None),
            ("lib/apk/db/installed", fixture("alpine", "installed.multiple-1")),
        ]),
    ])
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2,
                   "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [debian, alpine]}, f, indent=2)
        f.write("\n")
    with open(os.path.join(OUT, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}\n')


if __name__ == "__main__":
    main()
