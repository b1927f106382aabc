"""The built-in base image: the publishing host's GNU C library, as one reproducible layer.

Conda packages for Linux carry everything but the C library and the program loader, which
they take from the system (``glibc.LOADERS``). An image of an environment alone therefore
cannot start a program. Without ``publish.image_base`` images get this base, assembled
from the C library of the machine that publishes — nothing is pulled, so it works on
air-gapped sites. It holds, for the image's architecture when it is the host's:

* the program loader at the path conda binaries name, and glibc's run-time libraries
  (``GLIBC_LIBRARIES``: libc, libm, libpthread, libdl, librt, libutil, libresolv, libnsl,
  libanl, libmvec and the NSS modules for files and DNS), with the symbolic links leading
  to them as the host has them;
* ``libgcc_s.so.1`` (glibc loads it to cancel threads and unwind stacks) and
  ``libcrypt.so.1`` (split out of glibc), where the host has them;
* a minimal ``/etc/passwd``, ``/etc/group`` (root and nobody), ``/etc/nsswitch.conf``
  (files, then DNS for hosts) and ``/tmp``.

Each file is recorded with the host package that owns it and its version (``dpkg`` or
``rpm``), shown as image labels. The layer is an ``archive.write_archive`` tar: the same
host files give the same layer digest, shared by every image built on that host.

It is cached by content under ``<cache>/builtin/<key>/`` (the key hashes every file's
bytes, paths, modes and the layer format), so a publish costs one read of ~4 MB of
libraries; the newest ``KEEP`` entries are kept and older ones removed when a new one is
written (a glibc update adds one).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condaops.reconciler.publish.archive import Entry, parent_dirs, write_archive
from condaops.reconciler.publish.glibc import LOADERS, BaseLibc, is_libc_name, libc_version
from condaops.reconciler.publish.image import DEFAULT_PATH, Layer, LayerFormat

FORMAT = 1  # bump when the layer's content rules change: a new cache key
KEEP = 3
GLIBC_LIBRARIES = (
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "libresolv.so.2",
    "libnsl.so.1",
    "libanl.so.1",
    "libmvec.so.1",
    "libnss_files.so.2",
    "libnss_dns.so.2",
    "libnss_compat.so.2",
)
EXTRA_LIBRARIES = ("libgcc_s.so.1", "libcrypt.so.1")
MACHINES = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}
TRIPLETS = {
    "amd64": "x86_64-linux-gnu",
    "arm64": "aarch64-linux-gnu",
    "ppc64le": "powerpc64le-linux-gnu",
    "s390x": "s390x-linux-gnu",
}
ETC_FILES = {
    "etc/passwd": b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
    "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    "etc/nsswitch.conf": b"passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
}
LABEL_GLIBC = "io.condaops.base.glibc"
LABEL_PACKAGES = "io.condaops.base.packages"
BUILTIN_NAME = "builtin"


class NoHostLibc(Exception):
    """This host cannot provide a C library for the image (another OS or architecture)."""


@dataclass(frozen=True, slots=True)
class HostFile:
    """One path of the base: a regular file (``source`` on the host) or a symbolic link."""

    path: str  # in the image, relative ("lib/x86_64-linux-gnu/libc.so.6")
    source: Path | None = None
    link: str | None = None
    data: bytes | None = None
    mode: int = 0o755


@dataclass(frozen=True, slots=True)
class HostBase:
    """The built-in base: its one layer, its config (labels with the packages) and libc."""

    layer: Layer
    config: dict[str, Any]
    libc: BaseLibc
    packages: dict[str, str]  # host package -> version

    @property
    def description(self) -> str:
        owned = ", ".join(f"{name} {version}" for name, version in sorted(self.packages.items()))
        return f"{BUILTIN_NAME} (glibc {self.libc.glibc} from this host: {owned or 'unknown packages'})"


def host_architecture() -> str | None:
    """The OCI architecture of this machine when it runs Linux, else None."""
    if platform.system() != "Linux":
        return None
    return MACHINES.get(platform.machine())


def host_base(cache: Path, architecture: str, layer_format: LayerFormat) -> HostBase:
    """The built-in base for ``architecture`` from the cache, assembled if missing.
    Raises ``NoHostLibc`` when this host has no C library for it."""
    if host_architecture() != architecture:
        raise NoHostLibc(f"this host ({platform.system()} {platform.machine()}) has no C library for {architecture}")
    files = host_files(architecture)
    key = _cache_key(files, layer_format)
    folder = cache / BUILTIN_NAME / key
    found = _read_cached(folder)
    if found is None:
        found = _assemble(folder, files, architecture, layer_format)
        _collect(cache / BUILTIN_NAME, keep=KEEP)
    else:
        os.utime(folder)  # in use: the collector keeps the newest
    return found


def host_files(architecture: str) -> list[HostFile]:
    """The base's files on this host: the loader, the libraries, ``/etc`` files, ``/tmp``."""
    triplet = TRIPLETS.get(architecture, "")
    dirs = [f"lib/{triplet}", f"usr/lib/{triplet}", "lib64", "usr/lib64", "lib", "usr/lib"]
    wanted: list[str] = [LOADERS[architecture]]
    for name in GLIBC_LIBRARIES + EXTRA_LIBRARIES:
        path = next((f"{d}/{name}" for d in dirs if os.path.lexists(f"/{d}/{name}")), None)
        if path is not None:
            wanted.append(path)
    if not os.path.lexists(f"/{LOADERS[architecture]}") or len(wanted) < 2:
        raise NoHostLibc(f"this host has no GNU C library at /{LOADERS[architecture]} and /lib")
    files: dict[str, HostFile] = {}
    for path in wanted:
        for file in _chain(path):
            files.setdefault(file.path, file)
    for path, data in ETC_FILES.items():
        files[path] = HostFile(path, data=data, mode=0o644)
    files["tmp"] = HostFile("tmp", mode=0o1777)
    return [files[k] for k in sorted(files)]


def _chain(path: str) -> Iterator[HostFile]:
    """``path`` and, while it is a symbolic link, what it points to (at most 8 hops)."""
    for _ in range(8):
        host = Path("/" + path)
        if not host.is_symlink():
            yield HostFile(path, source=host.resolve(), mode=0o755)
            return
        target = os.readlink(host)
        yield HostFile(path, link=target)
        path = os.path.normpath(os.path.join(os.path.dirname("/" + path), target)).lstrip("/")
    raise NoHostLibc(f"/{path}: too many symbolic links")


def _cache_key(files: Sequence[HostFile], layer_format: LayerFormat) -> str:
    sha = hashlib.sha256(f"{FORMAT} {layer_format.compression} {layer_format.level}\n".encode())
    for file in files:
        content = file.data if file.data is not None else file.source.read_bytes() if file.source else b""
        sha.update(f"{file.path} {file.mode:o} {file.link or ''} {hashlib.sha256(content).hexdigest()}\n".encode())
    return sha.hexdigest()[:32]


def _entries(files: Sequence[HostFile]) -> list[Entry]:
    entries = {d: Entry(d + "/") for d in parent_dirs([f.path for f in files])}
    for file in files:
        entries[file.path] = _entry(file)
    return [entries[k] for k in sorted(entries)]


def _entry(file: HostFile) -> Entry:
    if file.link is not None:
        return Entry(file.path, source=Path("/" + file.path))  # the host's link, as it is
    if file.source is None and file.data is None:
        return Entry(file.path + "/", mode=file.mode)
    data = file.data if file.data is not None else file.source.read_bytes() if file.source else b""
    return Entry(file.path, data=data, mode=file.mode)


def _assemble(folder: Path, files: Sequence[HostFile], architecture: str, layer_format: LayerFormat) -> HostBase:
    # libc.so.6 itself, or the libc-2.xx.so it links to on older systems
    libc = [f.source for f in files if f.source is not None and is_libc_name(f.path)]
    glibc = libc_version(libc[0].read_bytes()) if libc else None
    packages = owning_packages([Path("/" + f.path) for f in files if f.source is not None or f.link is not None])
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".assemble-", dir=folder.parent))
    try:
        written = write_archive(
            scratch / f"layer{layer_format.suffix}", _entries(files), layer_format.compression, layer_format.level
        )
        labels = {
            LABEL_GLIBC: glibc or "",
            LABEL_PACKAGES: " ".join(f"{n}={v}" for n, v in sorted(packages.items())),
        }
        config = {
            "architecture": architecture,
            "os": "linux",
            "config": {"Env": [f"PATH={DEFAULT_PATH}"], "Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{written.tar_sha256}"]},
            "history": [{"created_by": f"condaops: GNU C library {glibc} from the host ({labels[LABEL_PACKAGES]})"}],
        }
        record = {
            "layer": {
                "digest": f"sha256:{written.sha256}",
                "size": written.size,
                "diff_id": f"sha256:{written.tar_sha256}",
            },
            "media_type": layer_format.media_type,
            "suffix": layer_format.suffix,
            "config": config,
            "glibc": glibc,
            "packages": packages,
        }
        (scratch / "base.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(scratch, folder)
        except OSError:  # another publish assembled the same base meanwhile: use theirs
            pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    found = _read_cached(folder)
    if found is None:
        raise OSError(f"the built-in base in {folder} could not be written")
    return found


def _read_cached(folder: Path) -> HostBase | None:
    try:
        record = json.loads((folder / "base.json").read_text())
    except (OSError, ValueError):
        return None
    blob = folder / f"layer{record['suffix']}"
    if not blob.is_file():
        return None
    layer = Layer(
        blob,
        record["layer"]["digest"],
        record["layer"]["size"],
        record["layer"]["diff_id"],
        (),
        record["media_type"],
    )
    libc = BaseLibc(BUILTIN_NAME, record["glibc"], True)
    return HostBase(layer, record["config"], libc, dict(record["packages"]))


def _collect(root: Path, *, keep: int) -> None:
    """Remove all but the ``keep`` most recently used cached bases."""
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=_mtime, reverse=True)
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def owning_packages(paths: Sequence[Path]) -> dict[str, str]:
    """The host packages owning ``paths``, with their versions (dpkg, else rpm; empty
    when the host has neither or they do not know the files)."""
    if shutil.which("dpkg-query"):
        return _dpkg_packages(paths)
    if shutil.which("rpm"):
        return _rpm_packages(paths)
    return {}


def _dpkg_packages(paths: Sequence[Path]) -> dict[str, str]:
    # One query for every path ("libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6" per line;
    # unknown paths only make the exit status 1), then one for the versions.
    queried = dict.fromkeys(str(p) for path in paths for p in (path, path.resolve()))
    names: set[str] = set()
    for line in _run(["dpkg-query", "-S", *queried], any_status=True).splitlines():
        owners, sep, _path = line.rpartition(": ")
        if sep and not owners.startswith("diversion"):
            names.update(n.strip() for n in owners.split(",") if n.strip())
    if not names:
        return {}
    out = _run(["dpkg-query", "-W", "-f=${Package} ${Version}\n", *sorted(names)], any_status=True)
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def _rpm_packages(paths: Sequence[Path]) -> dict[str, str]:
    versions = {}
    for path in paths:
        out = _run(["rpm", "-qf", "--queryformat", "%{NAME} %{VERSION}-%{RELEASE}\n", str(path)])
        if out and " " in out and "not owned" not in out:
            name, version = out.splitlines()[0].split(" ", 1)
            versions[name] = version
    return versions


def _run(cmd: list[str], *, any_status: bool = False) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 or any_status else ""
