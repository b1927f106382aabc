"""The channel test support itself: packages rattler accepts, indexing, the HTTP server."""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
import zstandard
from rattler import IndexJson, PathsJson

from tests.support.channels import (
    PREFIX_PLACEHOLDER,
    PackageSpec,
    closed_port_url,
    make_channel,
    serve_directory,
    write_package,
)

pytestmark = pytest.mark.integration

FILES = {
    "share/demo/data.txt": "plain data\n",
    "etc/demo.conf": f"root={PREFIX_PLACEHOLDER}\n",
    "lib/blob.bin": bytes(range(256)),
}


def _payload_members(archive: Path) -> dict[str, tuple[bytes, int]]:
    """path → (content, mode) of every file in a package, both formats."""
    if archive.suffix == ".bz2":
        tars = [bz2.decompress(archive.read_bytes())]
    else:
        with zipfile.ZipFile(archive) as zf:
            tars = [
                zstandard.ZstdDecompressor().decompress(zf.read(n), max_output_size=1 << 30)
                for n in zf.namelist()
                if n.endswith(".tar.zst")
            ]
    members: dict[str, tuple[bytes, int]] = {}
    for data in tars:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for info in tar.getmembers():
                members[info.name] = (tar.extractfile(info).read(), info.mode)  # type: ignore[union-attr]
    return members


@pytest.mark.parametrize("fmt", ["tar.bz2", "conda"])
def test_written_package_is_read_by_rattler(tmp_path: Path, fmt: str) -> None:
    archive = write_package(
        tmp_path,
        "demo",
        "1.2.3",
        build="h0_1",
        depends=["dep >=1"],
        files=FILES,
        fmt=fmt,
        executables=["demo-tool"],  # type: ignore[arg-type]
    )

    assert archive == tmp_path / "linux-64" / f"demo-1.2.3-h0_1.{fmt}"
    index = IndexJson.from_package_archive(archive)
    assert (index.name.normalized, str(index.version), str(index.build)) == ("demo", "1.2.3", "h0_1")
    assert index.depends == ["dep >=1"] and index.subdir == "linux-64"
    entries = {str(e.relative_path): e for e in PathsJson.from_package_archive(archive).paths}
    assert set(entries) == {*FILES, "bin/demo-tool"}
    members = _payload_members(archive)
    for path, entry in entries.items():
        assert hashlib.sha256(members[path][0]).digest() == entry.sha256
        assert len(members[path][0]) == entry.size_in_bytes
    assert members["bin/demo-tool"][1] == 0o755 and members["lib/blob.bin"][1] == 0o644
    has_prefix = {p for p, e in entries.items() if e.prefix_placeholder is not None}
    assert has_prefix == {"etc/demo.conf", "bin/demo-tool"}
    assert members["info/has_prefix"][0].decode().splitlines() == [
        f"{PREFIX_PLACEHOLDER} text bin/demo-tool",
        f"{PREFIX_PLACEHOLDER} text etc/demo.conf",
    ]
    assert members["info/files"][0].decode().splitlines() == sorted(entries)


@pytest.mark.parametrize("fmt", ["tar.bz2", "conda"])
def test_written_packages_are_byte_identical(tmp_path: Path, fmt: str) -> None:
    first = write_package(tmp_path / "a", "demo", "1.0", files=FILES, fmt=fmt)  # type: ignore[arg-type]
    second = write_package(tmp_path / "b", "demo", "1.0", files=FILES, fmt=fmt)  # type: ignore[arg-type]
    assert first.read_bytes() == second.read_bytes()


def test_conda_format_layout(tmp_path: Path) -> None:
    archive = write_package(tmp_path, "demo", "1.0", files=FILES, fmt="conda")
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist() == ["metadata.json", "info-demo-1.0-0.tar.zst", "pkg-demo-1.0-0.tar.zst"]
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
        assert json.loads(zf.read("metadata.json")) == {"conda_pkg_format_version": 2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Demo"}, "lowercase"),
        ({"files": {"../escape": "x"}}, "relative"),
        ({"files": {"info/index.json": "{}"}}, "outside info/"),
    ],
    ids=["uppercase-name", "parent-path", "info-path"],
)
def test_write_package_refuses_invalid_packages(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"name": "demo", "version": "1.0"} | kwargs
    with pytest.raises(ValueError, match=message):
        write_package(tmp_path, **args)


def test_make_channel_indexes_every_subdir(channel_factory) -> None:
    root = channel_factory(
        [
            PackageSpec("app", "1.0", depends=("lib",)),
            {"name": "lib", "version": "2.0", "fmt": "conda"},
            PackageSpec("data", "3.0", subdir="noarch"),
            PackageSpec("mac", "1.0", subdir="osx-arm64", fmt="conda"),
        ]
    )

    def records(subdir: str) -> dict[str, dict]:
        data = json.loads((root / subdir / "repodata.json").read_text())
        return data["packages"] | data["packages.conda"]

    assert set(records("linux-64")) == {"app-1.0-0.tar.bz2", "lib-2.0-0.conda"}
    assert records("noarch")["data-3.0-0.tar.bz2"]["noarch"] == "generic"
    assert set(records("osx-arm64")) == {"mac-1.0-0.conda"}
    lib = records("linux-64")["lib-2.0-0.conda"]
    assert lib["sha256"] == hashlib.sha256((root / "linux-64/lib-2.0-0.conda").read_bytes()).hexdigest()
    assert not (root / ".tmp").exists()


def test_make_channel_without_packages_is_an_empty_valid_channel(tmp_path: Path) -> None:
    root = make_channel(tmp_path / "empty")
    assert json.loads((root / "noarch" / "repodata.json").read_text())["packages"] == {}


def _get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_server_validates_with_content_etags(tmp_path: Path) -> None:
    target = tmp_path / "noarch" / "repodata.json"
    target.parent.mkdir()
    target.write_text('{"v": 1}')
    with serve_directory(tmp_path) as url:
        status, headers, body = _get(f"{url}/noarch/repodata.json")
        assert (status, body) == (200, b'{"v": 1}')
        etag = headers["ETag"]
        assert "Last-Modified" in headers and headers["Content-Type"] == "application/json"

        assert _get(f"{url}/noarch/repodata.json", {"If-None-Match": etag})[0] == 304

        # Rewritten within the same second and with the same mtime: a Last-Modified
        # validator would answer 304 with stale content; the content ETag does not.
        stat = target.stat()
        target.write_text('{"v": 2}')
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        status, headers, body = _get(
            f"{url}/noarch/repodata.json",
            {"If-None-Match": etag, "If-Modified-Since": headers["Last-Modified"]},
        )
        assert (status, body) == (200, b'{"v": 2}') and headers["ETag"] != etag


def test_server_counts_requests_and_refuses_escapes(tmp_path: Path) -> None:
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "file.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("secret")
    with serve_directory(tmp_path / "served") as url:
        assert url.startswith("http://127.0.0.1:") and not url.endswith("/")
        assert _get(f"{url}/file.txt", method="HEAD")[0] == 200
        assert _get(f"{url}/file.txt")[2] == b"hello"
        assert _get(f"{url}/missing")[0] == 404
        assert _get(f"{url}/%2e%2e/secret.txt")[0] == 404
        assert url.request_count("/file.txt") == 2
        assert url.request_count(status=404) == 2
        assert [e.method for e in url.requests.entries[:2]] == ["HEAD", "GET"]
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/file.txt", timeout=5)


def test_closed_port_refuses_connections() -> None:
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(closed_port_url(), timeout=5)


def test_http_channel_serves_a_made_channel(channel_factory, http_channel) -> None:
    root = channel_factory([PackageSpec("tool", "1.0", executables=("tool",))])
    url = http_channel(root)
    status, _, body = _get(f"{url}/linux-64/repodata.json")
    assert status == 200 and "tool-1.0-0.tar.bz2" in json.loads(body)["packages"]
    assert _get(f"{url}/linux-64/tool-1.0-0.tar.bz2")[2] == (root / "linux-64/tool-1.0-0.tar.bz2").read_bytes()


def test_realdata_channel_serves_shared_packages(realdata_channel) -> None:
    url = realdata_channel("defaults-2021-py27-flask")
    status, _, body = _get(f"{url}/noarch/repodata.json")
    assert status == 200
    assert "flask-1.1.2-pyhd3eb1b0_0.tar.bz2" in json.loads(body)["packages"]
