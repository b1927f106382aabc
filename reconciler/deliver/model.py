"""Plain data of deliveries: what an environment looks like to them, and what they write.

Pure: standard library only. ``observe`` fills ``EnvSnapshot`` from the state DB and the
prefix; ``plan`` turns it into ``Unit``s (the files and links to write) and ``Delivery``
records (what users see); ``fs`` writes the units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from condaops.reconciler.model import DeliveryRecord, EnvRef
from condaops.reconciler.reasons import Reason

# Delivery kinds, as recorded and shown.
KERNEL, MODULE, NAME = "kernel", "module", "name"
KINDS = (KERNEL, MODULE, NAME)

# Reasons a delivery was not written (stored with the record, shown as-is).
KERNEL_NAME_TAKEN = Reason.KERNEL_NAME_TAKEN  # the kernel folder holds a kernel condaops did not write for it
MODULE_NAME_TAKEN = Reason.MODULE_NAME_TAKEN  # the module folder holds modulefiles condaops did not write for it
NAME_TAKEN = Reason.NAME_TAKEN  # the name is a folder, or a link to something other than this environment
KERNEL_COMMAND_MISSING = Reason.KERNEL_COMMAND_MISSING  # the kernelspec's program is not in the environment's bin/
DELIVERY_FAILED = Reason.DELIVERY_FAILED  # the folder cannot be written (missing, permissions, disk full)

# The marker line that says a modulefile was written by condaops for one environment (a kernel.json
# says it with metadata.condaops.environment).
MARKER = "condaops-environment"

# The logo files Jupyter shows for a kernel, copied beside its kernel.json when it ships them.
LOGOS = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg")


@dataclass(frozen=True, slots=True)
class KernelSource:
    """A kernelspec an environment ships (``share/jupyter/kernels/<name>/kernel.json``)."""

    name: str  # its folder name: python3, ir, xpython...
    spec: Mapping[str, Any]  # the kernel.json it ships
    folder: Path  # where its logo files are
    logos: tuple[str, ...] = ()  # logo-32x32.png, logo-64x64.png, logo-svg.svg when present


@dataclass(frozen=True, slots=True)
class BuildSnapshot:
    """One build whose prefix is on disk."""

    build_id: int
    prefix: str  # the build's own prefix, absolute
    revision: str | None = None
    spec_hash: str = ""
    packages: tuple[tuple[str, str], ...] = ()  # the requested packages with their versions
    # What conda's activation adds (env_vars.d, activate.d scripts): values hold ``prefix``,
    # relocated to where a delivery runs the build from; ``path``: entries before bin/.
    activation: tuple[tuple[str, str], ...] = ()
    path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EnvSnapshot:
    """What deliveries need to know about one environment, read once.

    ``current`` is None for an environment without a linked build, and for a retired one:
    then nothing is delivered. ``kept`` are the builds whose prefix is still on disk (the
    current one included), newest first, one per prefix."""

    ref: EnvRef
    link: str  # the stable link users activate (absolute)
    current: BuildSnapshot | None
    kept: tuple[BuildSnapshot, ...] = ()
    source_path: str | None = None
    kernels: tuple[KernelSource, ...] = ()  # of the current build
    programs: frozenset[str] = frozenset()  # names in the current build's bin/
    variables: tuple[tuple[str, str], ...] = ()  # the spec's variables:
    display_name: str | None = None  # the file's condaops: display_name: (replaces kernels.display_name)


@dataclass(frozen=True, slots=True)
class KernelUnit:
    """A kernelspec folder: ``kernel.json`` and the logo files copied from ``logos``."""

    path: Path
    kernel_json: bytes
    logos: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class ModuleUnit:
    """The folder of one environment's modulefiles: every file condaops wants in it (file
    name -> text); files it wrote before and no longer wants are removed."""

    path: Path
    files: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class NameUnit:
    """A name in the ``envs_dirs`` folder: a symlink to the environment's stable link."""

    path: Path
    target: str


Unit = KernelUnit | ModuleUnit | NameUnit


@dataclass(frozen=True, slots=True)
class Planned:
    """A unit to write and the deliveries it makes usable (they share its fate)."""

    unit: Unit
    deliveries: tuple[DeliveryRecord, ...]


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    """Everything one environment should have; ``problems`` are deliveries that cannot be
    planned at all (recorded with their error, nothing written)."""

    planned: tuple[Planned, ...] = ()
    problems: tuple[DeliveryRecord, ...] = field(default_factory=tuple)
