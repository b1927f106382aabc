"""Committed lockfiles as condaops writes them (``condaops lock``, update pull requests).

``render_lock`` gives the bytes of one environment's conda-lock.yml or pixi.lock for the
records of every platform: the same writers as a build's artifacts (``build.lock``), with
two differences for a file that lives in Git beside its spec:

* conda-lock.yml records, per platform, the input hash of the spec it was solved from
  (``check.lock_input_hash``), so a changed spec shows as ``LockStale``; it starts with a
  comment saying how to refresh it;
* a pixi.lock cannot hold pip packages' hashes (py-rattler writes none), so an
  environment with ``pip:`` dependencies is locked as conda-lock.yml only.

Output is deterministic: the same solution gives the same bytes (no time is written), so
an update that finds nothing new changes no file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from rattler import RepoDataRecord

from condaops.reconciler.build.lock import CONDA_LOCK, PIXI_LOCK, write_conda_lock, write_pixi_lock
from condaops.reconciler.build.pip import PipLock
from condaops.reconciler.errors import LockError
from condaops.reconciler.lockfiles import LOCK_INVALID
from condaops.reconciler.locks.check import lock_input_hash
from condaops.reconciler.model import EnvRef
from condaops.reconciler.spec import Spec

LOCK_SUFFIXES = {CONDA_LOCK: ".conda-lock.yml", PIXI_LOCK: ".pixi.lock"}
FOLDER_LOCKS = {CONDA_LOCK: "conda-lock.yml", PIXI_LOCK: "pixi.lock"}


def lock_path_for(spec_path: str, kind: str) -> str:
    """Where the lock of the environment file ``spec_path`` goes: ``<ns>/<name>.conda-lock.yml``
    beside ``<ns>/<name>.yaml``, ``conda-lock.yml`` inside an environment's folder."""
    folder, _, name = spec_path.rpartition("/")
    stem = name.rsplit(".", 1)[0]
    if stem == "environment" and folder:
        return f"{folder}/{FOLDER_LOCKS[kind]}"
    return f"{folder}/{stem}{LOCK_SUFFIXES[kind]}" if folder else f"{stem}{LOCK_SUFFIXES[kind]}"


def render_lock(
    kind: str,
    records: Mapping[str, Sequence[RepoDataRecord]],
    pip: Mapping[str, Sequence[PipLock]],
    *,
    spec: Spec,
    ref: EnvRef,
    channels: Sequence[str],
    source_path: str,
) -> bytes:
    """The bytes of ``ref``'s committed lock. ``spec`` is the effective spec it was solved
    from (without a lock pin); ``channels`` its canonical channel URLs."""
    spec = spec.unlocked
    with tempfile.TemporaryDirectory(prefix="condaops-lock-") as tmp:
        target = Path(tmp) / FOLDER_LOCKS[kind]
        if kind == CONDA_LOCK:
            write_conda_lock(
                target,
                records,
                pip,
                name=ref.name,
                channels=channels,
                spec_hash=spec.spec_hash,
                source_path=source_path,
                content_hash={p: lock_input_hash(spec, p) for p in records},
            )
            header = f"# Locked by condaops for {ref} ({source_path}); refresh with: condaops lock {ref}\n"
            return header.encode() + target.read_bytes()
        if any(pip.values()):
            raise LockError(
                f"{source_path}: pixi.lock as condaops writes it cannot hold the hashes of pip: packages; "
                "lock this environment as conda-lock.yml",
                reason=LOCK_INVALID,
            )
        write_pixi_lock(target, records, pip, channels=channels)
        return target.read_bytes()
