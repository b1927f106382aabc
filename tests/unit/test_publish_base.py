"""The base of images: the built-in one from this host's C library (cached by content,
collected), the C library found in a base's layers, and activation variables."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from condaops.config.settings import PublishSettings
from condaops.reconciler.publish.activation import activation, env_vars_file
from condaops.reconciler.publish.archive import Entry, write_archive
from condaops.reconciler.publish.base import BaseImage, base_libc, choose_base
from condaops.reconciler.publish.glibc import LOADERS
from condaops.reconciler.publish.hostbase import KEEP, LABEL_GLIBC, LABEL_PACKAGES, host_architecture, host_base
from condaops.reconciler.publish.image import LAYER_FORMATS, OCI_LAYER_GZIP, Layer

needs_glibc_host = pytest.mark.skipif(
    host_architecture() is None or not os.path.lexists("/" + LOADERS.get(host_architecture() or "", "-")),
    reason="the built-in base is assembled from a Linux host's GNU C library",
)


@needs_glibc_host
def test_the_built_in_base_holds_the_loader_and_glibc_and_is_cached(tmp_path: Path) -> None:
    architecture = host_architecture() or ""
    first = host_base(tmp_path, architecture, LAYER_FORMATS["zstd"])
    raw = zstandard.ZstdDecompressor().stream_reader(first.layer.file.open("rb")).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = {m.name: m for m in tar}
    assert any(n.endswith("/libc.so.6") for n in names) and "etc/passwd" in names and names["tmp"].mode == 0o1777
    assert all((m.uid, m.mtime, m.uname) == (0, 0, "") for m in names.values())
    labels = first.config["config"]["Labels"]
    assert labels[LABEL_GLIBC] == first.libc.glibc == os.confstr("CS_GNU_LIBC_VERSION").split()[-1]  # type: ignore[union-attr]
    assert first.libc.loader and "glibc" in first.description
    assert set(first.packages) <= {p.split("=")[0] for p in labels[LABEL_PACKAGES].split()}
    again = host_base(tmp_path, architecture, LAYER_FORMATS["zstd"])
    assert again.layer.digest == first.layer.digest and again.layer.file == first.layer.file  # from the cache
    gzip = host_base(tmp_path, architecture, LAYER_FORMATS["gzip"])
    assert gzip.layer.diff_id == first.layer.diff_id and gzip.layer.digest != first.layer.digest


@needs_glibc_host
def test_the_cache_keeps_the_most_recently_used_bases(tmp_path: Path) -> None:
    for i in range(KEEP + 2):
        old = tmp_path / "builtin" / f"old{i}"
        old.mkdir(parents=True)
        os.utime(old, (time.time() - 1000 + i, time.time() - 1000 + i))
    host_base(tmp_path, host_architecture() or "", LAYER_FORMATS["zstd"])
    kept = sorted(p.name for p in (tmp_path / "builtin").iterdir())
    assert len(kept) == KEEP and f"old{KEEP + 1}" in kept and "old0" not in kept


def test_another_architecture_has_no_built_in_base(tmp_path: Path) -> None:
    other = "s390x" if host_architecture() != "s390x" else "amd64"
    base = choose_base(PublishSettings(), tmp_path, other)
    assert base is not None and base.layers == () and base.libc is not None
    assert "no built-in base" in (base.libc.missing or "") and f"a {other} image" in (base.libc.missing or "")
    assert choose_base(PublishSettings(image_base="scratch"), tmp_path, other) is None


def test_the_c_library_is_read_from_a_bases_layers(tmp_path: Path) -> None:
    banner = b"\0GNU C Library (GNU libc) stable release version 2.28.\n\0"
    (tmp_path / "loader").symlink_to("/lib64/ld-2.28.so")
    layer = write_archive(
        tmp_path / "l.tar.gz",
        [
            Entry("lib64/"),
            Entry("lib64/ld-linux-x86-64.so.2", tmp_path / "loader"),
            Entry("lib64/libc-2.28.so", data=b"\x7fELF" + banner),
            Entry("lib64/libc.so.6.bak", data=b"GNU C Library version 9.99"),
        ],
    )
    base = BaseImage("reg/el8:1", "sha256:" + "a" * 64, (Layer(layer.path, "x", 1, "y", (), OCI_LAYER_GZIP),), {})
    found = base_libc(base, "amd64", tmp_path / "cache")
    assert (found.glibc, found.loader) == ("2.28", True)
    assert base_libc(base, "arm64", tmp_path / "cache").loader is False  # lib/ld-linux-aarch64.so.1 is missing
    layer.path.unlink()  # read once per base digest
    assert base_libc(base, "amd64", tmp_path / "cache") == found


def test_activation_runs_scripts_and_reads_env_vars(tmp_path: Path) -> None:
    prefix = tmp_path / "store" / "env"
    (prefix / "etc/conda/activate.d").mkdir(parents=True)
    (prefix / "etc/conda/env_vars.d").mkdir(parents=True)
    (prefix / "etc/conda/env_vars.d/a.json").write_text('{"MODE": "fast", "IGNORED": 3}')
    (prefix / "etc/conda/env_vars.d/bad.json").write_text("{not json")
    (prefix / "etc/conda/activate.d/1.sh").write_text('export DATA="$CONDA_PREFIX/share"\nfalse\n')
    (prefix / "etc/conda/activate.d/2.sh").write_text('export SEEN="$DATA:$MODE"\n')
    (prefix / "etc/conda/activate.d/3.sh").write_text("exit 1\n")
    start = {"PATH": "/opt/env/bin:/usr/bin:/bin", "CONDA_PREFIX": "/opt/env"}
    found = activation(prefix, "/opt/env", start)
    assert dict(found.variables) == {"MODE": "fast", "DATA": "/opt/env/share", "SEEN": "/opt/env/share:fast"}
    assert found.skipped == ["etc/conda/activate.d/3.sh"]
    assert env_vars_file(prefix / "etc/conda/env_vars.d/bad.json") == {}
    assert activation(tmp_path / "none", "/opt/env", start).variables == []
