"""Whether an image's programs can run on its base: glibc requirements (pure)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from condaops.reconciler.publish.glibc import (
    BaseLibc,
    Requirement,
    glibc_requirements,
    image_problem,
    is_libc_name,
    libc_version,
    unmet,
)


def record(name: str, *depends: str) -> SimpleNamespace:
    return SimpleNamespace(name=SimpleNamespace(normalized=name), depends=list(depends))


RECORDS = [
    record("libgcc", "__glibc >=2.17,<3.0.a0", "_openmp_mutex"),
    record("openssl", "__glibc >=2.17,<3.0.a0", "ca-certificates"),
    record("newer", "__glibc >=2.38"),
    record("any", "__glibc"),
    record("plain", "libzlib >=1.3"),
]


def test_requirements_are_the_glibc_dependencies() -> None:
    assert glibc_requirements(RECORDS) == [
        Requirement("any", ""),
        Requirement("libgcc", ">=2.17,<3.0.a0"),
        Requirement("newer", ">=2.38"),
        Requirement("openssl", ">=2.17,<3.0.a0"),
    ]


@pytest.mark.parametrize(
    "glibc, missing",
    [("2.36", ["newer"]), ("2.38", []), ("2.12", ["libgcc", "newer", "openssl"]), ("3.1", ["libgcc", "openssl"])],
    ids=["debian12", "new-enough", "centos6", "too-new"],
)
def test_unmet_requirements(glibc: str, missing: list[str]) -> None:
    assert [r.package for r in unmet(glibc_requirements(RECORDS), glibc)] == missing


def test_problems_say_why_an_image_cannot_run() -> None:
    needs = glibc_requirements(RECORDS)
    assert image_problem(needs[:2], BaseLibc("builtin", "2.36", True)) is None
    problem = image_problem(needs, BaseLibc("builtin", "2.36", True)) or ""
    assert "has glibc 2.36" in problem and "newer needs glibc >=2.38" in problem
    assert "no GNU C library" in (image_problem(needs, BaseLibc("reg/alpine", None, False)) or "")
    assert "program loader" in (image_problem(needs, BaseLibc("reg/odd", "2.36", False)) or "")
    assert "scratch" in (image_problem([], None) or "")


def test_libc_banner_and_names() -> None:
    banner = b"\0GNU C Library (Debian GLIBC 2.36-9+deb12u14) stable release version 2.36.\n\0"
    assert libc_version(b"junk" + banner) == "2.36"
    assert libc_version(b"GNU C Library (GNU libc) stable release version 2.17, by Roland McGrath") == "2.17"
    assert libc_version(b"musl libc") is None
    assert is_libc_name("lib/x86_64-linux-gnu/libc.so.6") and is_libc_name("usr/lib64/libc-2.17.so")
    assert not is_libc_name("opt/env/lib/libcrypt.so.6") and not is_libc_name("lib/libc.so.6.bak")
