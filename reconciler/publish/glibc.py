"""Can an image run? The environment's C library needs against its base. Pure decisions.

Conda packages for Linux link against the system's GNU C library and name its program
loader (``/lib64/ld-linux-x86-64.so.2`` on x86-64) as their interpreter: the image's base
must provide both, in a version at least as new as the packages were built for. Packages
say so with a ``__glibc`` dependency (``__glibc >=2.17,<3.0.a0``, from conda-forge's
sysroot); ``glibc_requirements`` collects those of the solved records and ``image_problem``
checks them against what the base holds (``BaseLibc``: the glibc version found in it and
whether the loader is there). Packages that declare nothing are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

GLIBC = "__glibc"
# The program loader conda binaries name (their ELF interpreter), per OCI architecture.
LOADERS = {
    "amd64": "lib64/ld-linux-x86-64.so.2",
    "arm64": "lib/ld-linux-aarch64.so.1",
    "ppc64le": "lib64/ld64.so.2",
    "s390x": "lib/ld64.so.1",
    "386": "lib/ld-linux.so.2",
    "arm": "lib/ld-linux-armhf.so.3",
}
# glibc's banner in libc.so.6: "GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36."
_BANNER = re.compile(rb"GNU C Library [^\n\0]{0,200}? version (\d+\.\d+(?:\.\d+)?)")
_LIBC_NAME = re.compile(r"(?:^|/)(?:libc\.so\.6|libc-\d+\.\d+(?:\.\d+)?\.so)$")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One package's ``__glibc`` dependency: ``spec`` is its version range ('' = any)."""

    package: str
    spec: str

    def __str__(self) -> str:
        return f"{self.package} needs glibc {self.spec}".rstrip() if self.spec else f"{self.package} needs glibc"


@dataclass(frozen=True, slots=True)
class BaseLibc:
    """What a base offers: its glibc version (None: none found) and whether the program
    loader for the image's architecture is there; ``name`` says which base, for messages."""

    name: str
    glibc: str | None
    loader: bool
    missing: str | None = None  # why there is no C library at all (e.g. none for this architecture)


def glibc_requirements(records: Iterable[Any]) -> list[Requirement]:
    """The ``__glibc`` dependencies of solved or installed package records, by package."""
    found = []
    for record in records:
        for dep in getattr(record, "depends", None) or ():
            name, _, spec = str(dep).strip().partition(" ")
            if name == GLIBC:
                found.append(Requirement(_name(record), spec.strip()))
    return sorted(set(found), key=lambda r: (r.package, r.spec))


def _name(record: Any) -> str:
    name = record.name
    return str(getattr(name, "normalized", name))


def unmet(requirements: Sequence[Requirement], glibc: str) -> list[Requirement]:
    """The requirements a glibc of version ``glibc`` does not meet."""
    from rattler import Version, VersionSpec

    version = Version(glibc)
    return [r for r in requirements if r.spec and not VersionSpec(r.spec).matches(version)]


def image_problem(requirements: Sequence[Requirement], base: BaseLibc | None) -> str | None:
    """Why programs of the environment cannot run on ``base`` (None: they can, as far as
    the packages declare). ``base`` None is an image without a base."""
    if base is None:
        return "the image has no base (publish.image_base: scratch), so no C library: only static programs run"
    if base.missing:
        return base.missing
    if base.glibc is None:
        return f"the base {base.name} has no GNU C library (libc.so.6), which conda packages for Linux need"
    if not base.loader:
        return f"the base {base.name} has glibc {base.glibc} but not the program loader conda packages name"
    missing = unmet(requirements, base.glibc)
    if missing:
        needs = "; ".join(str(r) for r in missing[:5]) + ("; ..." if len(missing) > 5 else "")
        return f"the base {base.name} has glibc {base.glibc}, but {needs}"
    return None


def libc_version(data: bytes) -> str | None:
    """The glibc version a ``libc.so.6`` announces in its banner, or None."""
    match = _BANNER.search(data)
    return match.group(1).decode() if match else None


def is_libc_name(path: str) -> bool:
    """Whether an image path names glibc's C library (``.../libc.so.6``, ``libc-2.17.so``)."""
    return _LIBC_NAME.search(path) is not None
