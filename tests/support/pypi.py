"""Tiny Python package indexes for tests: real wheels, a PEP 503 index, a loopback server.

Wheels are written with zipfile the way a build backend would (``METADATA``, ``WHEEL``
and a ``RECORD`` with urlsafe-base64 sha256 digests), with fixed zip timestamps so the
same arguments always give the same bytes and the same hash.

Two layouts are offered because uv reads both: a flat find-links folder
(``write_wheel`` into any folder) and a PEP 503 "simple" index
(``write_simple_index``), which ``serve_directory`` serves on 127.0.0.1.

Why not ``tests.support.channels.serve_directory``: it serves files only (no
``<project>/`` -> ``index.html``) and as ``application/octet-stream``, so uv finds no
project on it. A simple index needs folder URLs answered with ``text/html``, which the
standard library's handler does.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import html
import http.server
import re
import shutil
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tests.support.loopback import serve_http

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date zip can store: reproducible bytes


def normalize(name: str) -> str:
    """PEP 503 normalized project name (``Foo_Bar`` -> ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _record_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(
    dest: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    modules: Mapping[str, str] | None = None,
    tag: str = "py3-none-any",
    requires_python: str | None = None,
) -> Path:
    """Write ``<name>-<version>-<tag>.whl`` into ``dest`` and return its path.

    ``modules`` maps file paths inside the wheel to their text; by default one
    importable package ``<name_underscored>/__init__.py`` defining ``VERSION``. ``tag``
    is the wheel's (possibly compressed) tag set; uv selects wheels by file name.
    """
    dest.mkdir(parents=True, exist_ok=True)
    dist = re.sub(r"[-_.]+", "_", name).lower()
    info = f"{dist}-{version}.dist-info"
    files: dict[str, bytes] = {
        path: text.encode() for path, text in (modules or {f"{dist}/__init__.py": f"VERSION = {version!r}\n"}).items()
    }
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        metadata.append(f"Requires-Python: {requires_python}")
    metadata += [f"Requires-Dist: {req}" for req in requires]
    files[f"{info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    interpreters, abis, platforms = tag.split("-")
    purelib = "true" if platforms == "any" else "false"
    wheel = ["Wheel-Version: 1.0", "Generator: condaops-tests", f"Root-Is-Purelib: {purelib}"]
    # A compressed tag set (``cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64``)
    # is listed expanded, one ``Tag:`` line each, as the wheel spec asks.
    wheel += [
        f"Tag: {i}-{a}-{p}" for i in interpreters.split(".") for a in abis.split(".") for p in platforms.split(".")
    ]
    files[f"{info}/WHEEL"] = ("\n".join(wheel) + "\n").encode()
    record = [f"{path},sha256={_record_digest(data)},{len(data)}" for path, data in files.items()]
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()

    path = dest / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for member, data in files.items():
            info_entry = zipfile.ZipInfo(member, _FIXED_DATE)
            info_entry.external_attr = 0o644 << 16
            zf.writestr(info_entry, data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_simple_index(root: Path, wheels: Sequence[Path]) -> Path:
    """Lay out ``root/files/*.whl`` and ``root/simple/<project>/index.html`` (PEP 503).

    Links carry ``#sha256=`` fragments as real indexes do. Returns ``root / "simple"``.
    """
    files_dir = root / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[Path]] = {}
    for wheel in wheels:
        target = files_dir / wheel.name
        if wheel.resolve() != target.resolve():
            shutil.copyfile(wheel, target)
        projects.setdefault(normalize(wheel.name.split("-")[0]), []).append(target)
    simple = root / "simple"
    simple.mkdir(exist_ok=True)
    links = []
    for project, paths in sorted(projects.items()):
        (simple / project).mkdir(exist_ok=True)
        anchors = "\n".join(
            f'<a href="../../files/{html.escape(p.name)}#sha256={sha256_of(p)}">{html.escape(p.name)}</a><br>'
            for p in sorted(paths)
        )
        (simple / project / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{anchors}\n</body></html>\n")
        links.append(f'<a href="{project}/">{project}</a><br>')
    (simple / "index.html").write_text("<!DOCTYPE html>\n<html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    return simple


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # request logs would drown pytest's output


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1 (random port); yields the base URL.

    The server runs in a daemon thread and is shut down when the block exits, so it
    never outlives the test (even on failure).
    """
    with serve_http(functools.partial(_QuietHandler, directory=str(root)), name="pypi-index") as url:
        yield url
