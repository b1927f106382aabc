"""Writing and removing delivery units on disk, atomically, touching only condaops' own.

Readers (Jupyter listing kernels, ``module avail``, ``conda env list``) never see half a
unit: every file is written beside its final name and renamed over it; a new kernel
folder is made under a hidden temporary name and renamed into place, its ``kernel.json``
arriving last (Jupyter lists a folder only once it holds one). Nothing is overwritten or
removed unless it carries condaops' marker for the same environment: a kernel, module
or name someone else made is reported (``*NameTaken``) and left alone. Files are
created with the process umask (world-readable under the usual 022): the users of a
cluster read them.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path

from condaops.reconciler.deliver import kernels, modules
from condaops.reconciler.deliver.model import (
    DELIVERY_FAILED,
    KERNEL_NAME_TAKEN,
    LOGOS,
    MODULE_NAME_TAKEN,
    NAME_TAKEN,
    KernelUnit,
    ModuleUnit,
    NameUnit,
    Unit,
)
from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.model import EnvRef

KERNEL_FILE = "kernel.json"
_PEEK = 4096  # bytes read to find a modulefile's marker


class DeliveryError(CondaopsError):
    """A unit could not be written; ``reason`` says why (a name taken, a folder unwritable)."""

    reason = DELIVERY_FAILED


def write_unit(unit: Unit, ref: EnvRef) -> bool:
    """Write ``unit`` for ``ref``; True if anything changed. Raises ``DeliveryError``."""
    try:
        if isinstance(unit, KernelUnit):
            return _write_kernel(unit, ref)
        if isinstance(unit, ModuleUnit):
            return _write_modules(unit, ref)
        return _write_name(unit, ref)
    except OSError as exc:
        raise DeliveryError(f"{ref}: cannot write {unit.path}: {exc.strerror or exc}; check the folder") from exc


# --- kernels -----------------------------------------------------------------------------


def kernel_owner(folder: Path) -> str | None:
    """The environment a kernel folder was written for by condaops; None if not ours."""
    try:
        data = json.loads((folder / KERNEL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return kernels.written_for(data) if isinstance(data, dict) else None


def _write_kernel(unit: KernelUnit, ref: EnvRef) -> bool:
    path = unit.path
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise DeliveryError(f"{path} is not a kernel folder condaops wrote; remove it", reason=KERNEL_NAME_TAKEN)
    spec = path / KERNEL_FILE
    if path.is_dir():
        if spec.exists() and kernel_owner(path) != str(ref):
            raise DeliveryError(
                f"{path} holds a kernel condaops did not write for {ref}; remove or rename it",
                reason=KERNEL_NAME_TAKEN,
            )
        changed = False
        for logo in unit.logos:
            changed = _replace(path / logo.name, logo.read_bytes()) or changed
        for stale in set(LOGOS) - {logo.name for logo in unit.logos}:  # the new build ships no such logo
            if (path / stale).is_file():
                (path / stale).unlink()
                changed = True
        return _replace(spec, unit.kernel_json) or changed
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    staging.mkdir()
    try:
        for logo in unit.logos:
            shutil.copyfile(logo, staging / logo.name)
        (staging / f"{KERNEL_FILE}.partial").write_bytes(unit.kernel_json)
        os.rename(staging, path)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):  # another process made it meanwhile
            return _write_kernel(unit, ref)
        raise
    os.rename(path / f"{KERNEL_FILE}.partial", spec)
    return True


def remove_kernels(folder: Path, ref: EnvRef, keep: Iterable[Path]) -> list[Path]:
    """Remove ``ref``'s kernels in ``folder`` that are not in ``keep``; returns them."""
    kept = set(keep)
    removed = []
    for path in sorted(folder.glob(kernels.kernel_name(ref) + "*")):
        if path not in kept and path.is_dir() and not path.is_symlink() and kernel_owner(path) == str(ref):
            _remove_tree(path)
            removed.append(path)
    return removed


# --- modules -----------------------------------------------------------------------------


def module_owner(path: Path) -> str | None:
    """The environment a modulefile was written for by condaops; None if not ours."""
    try:
        with path.open("rb") as f:
            head = f.read(_PEEK).decode("utf-8", errors="replace")
    except OSError:
        return None
    return modules.written_for(head)


def _write_modules(unit: ModuleUnit, ref: EnvRef) -> bool:
    path = unit.path
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise DeliveryError(f"{path} is not a module folder condaops wrote; remove it", reason=MODULE_NAME_TAKEN)
    present = [p for p in path.iterdir() if not _is_temporary(p)] if path.is_dir() else []
    foreign = sorted(p.name for p in present if p.is_dir() or module_owner(p) != str(ref))
    if foreign:
        raise DeliveryError(
            f"{path} holds modulefiles condaops did not write for {ref} ({', '.join(foreign[:3])}); "
            "move them, or set modules.directory to a folder of condaops' own",
            reason=MODULE_NAME_TAKEN,
        )
    if not unit.files:
        return _clear_modules(path, present)
    path.mkdir(parents=True, exist_ok=True)
    # Versions first, then the file naming the default, then what is no longer wanted: a
    # reader may see one version too many for a moment, never a default that is missing.
    order = sorted(unit.files, key=lambda name: (name.startswith("."), name))
    changed = False
    for name in order:
        changed = _replace(path / name, unit.files[name].encode()) or changed
    for stale in present:
        if stale.name not in unit.files:
            stale.unlink(missing_ok=True)
            changed = True
    return changed


def _clear_modules(path: Path, present: list[Path]) -> bool:
    for file in present:
        file.unlink(missing_ok=True)
    for folder in (path, path.parent):  # <ns>/<name>, then <ns> once no environment of it is left
        try:
            folder.rmdir()
        except OSError:
            break
    return bool(present)


# --- names -------------------------------------------------------------------------------


def name_points_at(link: Path, target: str) -> bool:
    """Whether the symlink ``link`` leads to ``target`` (relative or absolute)."""
    try:
        text = os.readlink(link)
    except OSError:
        return False
    here = os.path.normpath(os.path.join(link.parent, text))
    return here == os.path.normpath(os.path.join(link.parent, target))


def _write_name(unit: NameUnit, ref: EnvRef) -> bool:
    path = unit.path
    if path.is_symlink():
        if os.readlink(path) == unit.target:
            return False
        if not name_points_at(path, unit.target):
            raise DeliveryError(
                f"{path} links to {os.readlink(path)}, not to {ref}; another environment or a person has the name "
                f"{path.name}: remove the link, or rename one of the environments",
                reason=NAME_TAKEN,
            )
    elif path.exists():
        raise DeliveryError(f"{path} exists and is not a link condaops made; remove it", reason=NAME_TAKEN)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    os.symlink(unit.target, staging)
    try:
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return True


def remove_name(path: Path, target: str) -> bool:
    """Remove the name if it is condaops' link to ``target``."""
    if path.is_symlink() and name_points_at(path, target):
        path.unlink()
        return True
    return False


# --- helpers -----------------------------------------------------------------------------


def _replace(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless it already holds exactly that."""
    try:
        if path.is_file() and not path.is_symlink() and path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except OSError:
        pass
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask decides who may read
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return True


def _is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _remove_tree(path: Path) -> None:
    """Without its kernel.json Jupyter no longer lists the folder; then it goes."""
    (path / KERNEL_FILE).unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)
