"""Layer planning (pure) and deterministic archives."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from condaops.reconciler.publish.archive import GZIP, PLAIN, Entry, parent_dirs, write_archive
from condaops.reconciler.publish.layers import PackageFiles, layer_entries, plan_layers, prefix_packages, unowned_files


def pkg(name: str, size: int) -> PackageFiles:
    return PackageFiles(name, (f"lib/{name}.so",), size)


def test_every_package_gets_its_layer_within_the_budget() -> None:
    plans = plan_layers([pkg("b", 10), pkg("a", 20)], budget=3)
    assert [(p.packages, p.rest) for p in plans] == [(("a",), False), (("b",), False), ((), True)]


def test_over_the_budget_the_smallest_least_popular_share_one_layer() -> None:
    packages = [pkg("big", 1000), pkg("mid", 500), pkg("small", 10), pkg("tiny", 1)]
    plans = plan_layers(packages, budget=4)
    assert [p.packages for p in plans] == [("big",), ("mid",), ("small", "tiny"), ()]
    popular = plan_layers(packages, budget=4, popularity={"tiny": 10_000})
    assert [p.packages for p in popular] == [("big",), ("tiny",), ("mid", "small"), ()]


@pytest.mark.parametrize("budget", [2, 3, 5, 50], ids=str)
def test_plans_stay_within_the_budget_and_hold_every_package(budget: int) -> None:
    packages = [pkg(f"p{i:02d}", i * 7 % 13 + 1) for i in range(20)]
    plans = plan_layers(packages, budget=budget)
    assert len(plans) <= budget and plans[-1].rest
    assert sorted(n for p in plans for n in p.packages) == sorted(p.name for p in packages)


def test_a_budget_below_two_is_refused() -> None:
    with pytest.raises(ValueError):
        plan_layers([], budget=1)


def test_parent_dirs() -> None:
    assert parent_dirs(["a/b/c", "a/d", "e"]) == ["a", "a/b"]


def _prefix(root: Path) -> Path:
    (root / "conda-meta").mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "bin/tool").write_text("#!/bin/sh\n")
    (root / "bin/tool").chmod(0o755)
    (root / "lib").mkdir()
    (root / "lib/libx.so").write_bytes(b"\0elf")
    (root / "lib/libx.so.1").symlink_to("libx.so")
    (root / "conda-meta/tool-1-0.json").write_text('{"name": "tool", "files": ["bin/tool", "bin/gone"]}')
    (root / "conda-meta/libx-1-0.json").write_text('{"name": "libx", "files": ["lib/libx.so", "lib/libx.so.1"]}')
    (root / "conda-meta/history").write_text("")
    (root / "pip.txt").write_text("from pip")
    return root


def test_prefix_packages_and_unowned_files(tmp_path: Path) -> None:
    packages = prefix_packages(_prefix(tmp_path / "env"))
    assert [(p.name, p.files) for p in packages] == [
        ("libx", ("conda-meta/libx-1-0.json", "lib/libx.so", "lib/libx.so.1")),
        ("tool", ("bin/tool", "conda-meta/tool-1-0.json")),  # missing files are left out
    ]
    assert unowned_files(tmp_path / "env", packages) == ["conda-meta/history", "pip.txt"]


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def test_layers_are_deterministic_and_normalized(tmp_path: Path) -> None:
    prefix = _prefix(tmp_path / "env")
    entries = layer_entries(prefix, "/opt/env", ["lib/libx.so", "lib/libx.so.1", "bin/tool"])
    first = write_archive(tmp_path / "a.tar.gz", entries, GZIP)
    (prefix / "bin/tool").touch()  # a new mtime changes nothing
    second = write_archive(
        tmp_path / "b.tar.gz", layer_entries(prefix, "/opt/env", ["bin/tool", "lib/libx.so", "lib/libx.so.1"]), GZIP
    )
    data = first.path.read_bytes()
    assert data == second.path.read_bytes()
    assert data[4:8] == b"\0\0\0\0" and not data[3] & 0x08  # gzip: mtime 0, no file name
    assert first.tar_sha256 != first.sha256
    members = _members(gzip.decompress(data))
    assert [m.name for m in members] == [
        "opt",
        "opt/env",
        "opt/env/bin",
        "opt/env/bin/tool",
        "opt/env/lib",
        "opt/env/lib/libx.so",
        "opt/env/lib/libx.so.1",
    ]
    assert all((m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "") for m in members)
    assert members[3].mode == 0o755 and members[6].issym() and members[6].linkname == "libx.so"


def test_in_memory_entries_and_plain_tars(tmp_path: Path) -> None:
    written = write_archive(tmp_path / "x.tar", [Entry("d/"), Entry("d/f", data=b"hi", mode=0o600)], PLAIN)
    assert written.sha256 == written.tar_sha256
    members = _members(written.path.read_bytes())
    assert [(m.name, m.isdir(), m.mode) for m in members] == [("d", True, 0o755), ("d/f", False, 0o600)]


def test_tar_headers_read_back_and_match_gnu_tar(tmp_path: Path) -> None:
    """The hand-written headers: long names and link targets, a directory without its
    slash, non-ASCII, empty and block-sized files; the same bytes as tarfile's GNU format."""
    (tmp_path / "f").write_bytes(b"x" * 700)
    (tmp_path / "f").chmod(0o751)
    (tmp_path / "ln").symlink_to("t" * 120)
    long = "d/" + "n" * 150
    entries = [
        Entry("d"),
        Entry("d/f", tmp_path / "f"),
        Entry("d/empty", data=b""),
        Entry("d/block", data=b"y" * 512),
        Entry("d/ln", tmp_path / "ln"),
        Entry(long, data=b"long", mode=0o600),
        Entry("d/ünï", data=b"u"),
    ]
    mine = write_archive(tmp_path / "mine.tar", entries, PLAIN).path.read_bytes()
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, mode, data, link in [
            ("d", tarfile.DIRTYPE, 0o755, None, ""),
            ("d/f", tarfile.REGTYPE, 0o751, b"x" * 700, ""),
            ("d/empty", tarfile.REGTYPE, 0o644, b"", ""),
            ("d/block", tarfile.REGTYPE, 0o644, b"y" * 512, ""),
            ("d/ln", tarfile.SYMTYPE, 0o777, None, "t" * 120),
            (long, tarfile.REGTYPE, 0o600, b"long", ""),
            ("d/ünï", tarfile.REGTYPE, 0o644, b"u", ""),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.size = kind, mode, link, len(data or b"")
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    assert mine == expected.getvalue() and len(mine) % 10240 == 0
    members = _members(mine)
    assert [(m.name, m.size) for m in members][-2:] == [(long, 4), ("d/ünï", 1)]
    assert members[4].linkname == "t" * 120 and members[0].isdir()


def test_zstd_archives_do_not_depend_on_how_files_are_read(tmp_path: Path) -> None:
    """The same entries give the same zstd bytes whether a file is read whole or in
    chunks (a large file, over the whole-read limit) and whether it comes from disk or
    memory: the stream's blocks do not follow the writes."""
    import os
    import random

    import zstandard

    from condaops.reconciler.publish import archive

    blob = random.Random(7).randbytes(archive._WHOLE // 2) * 3  # compressible, over the limit
    (tmp_path / "big").write_bytes(blob)
    from_disk = write_archive(tmp_path / "a.tar.zst", [Entry("big", source=tmp_path / "big")], archive.ZSTD, 3)
    in_memory = write_archive(tmp_path / "b.tar.zst", [Entry("big", data=blob, mode=0o644)], archive.ZSTD, 3)
    assert os.path.getsize(tmp_path / "big") > archive._WHOLE
    assert from_disk.sha256 == in_memory.sha256 and from_disk.tar_sha256 == in_memory.tar_sha256
    with zstandard.ZstdDecompressor().stream_reader((tmp_path / "a.tar.zst").open("rb")) as reader:
        assert _members(reader.read())[0].size == len(blob)
