"""Jupyter kernelspecs of an environment, rendered from the kernelspecs it ships. Pure.

condaops never adds a kernel package: an environment that holds ``ipykernel``,
``r-irkernel``, ``xeus-python``... ships ``share/jupyter/kernels/<name>/kernel.json``,
and each of those becomes ``condaops-<ns>-<name>`` (the first, preferring ``python3``,
then ``ir``) or ``condaops-<ns>-<name>-<kernel>`` (any other). The command is taken from
the shipped spec and pointed into the environment through its stable link, so a rebuild
is picked up at the next kernel start; pinned kernels (``-<build>``) point at one build's
own prefix instead. The environment is activated in ``env`` the way ``conda activate``
does it for programs (``PATH``, ``CONDA_PREFIX``, the spec's ``variables:``, and what the
packages' activation hooks set: ``activate``); Jupyter fills ``${PATH}`` from the server's
environment (jupyter_client 7 and later).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from condaops.reconciler.deliver.model import (
    KERNEL_COMMAND_MISSING,
    BuildSnapshot,
    EnvSnapshot,
    KernelSource,
)
from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.model import EnvRef

PREFERRED = ("python3", "ir")  # the kernel that gets the environment's plain name, in order
_KERNEL_NAME = re.compile(r"^[a-z0-9._-]+$")  # what Jupyter accepts as a kernel name


class KernelCommandMissing(CondaopsError):
    reason = KERNEL_COMMAND_MISSING


def ordered(kernels: Sequence[KernelSource]) -> list[KernelSource]:
    """The environment's kernels, the one that gets the plain name first."""

    def rank(k: KernelSource) -> tuple[int, str]:
        return (PREFERRED.index(k.name) if k.name in PREFERRED else len(PREFERRED), k.name)

    return sorted(kernels, key=rank)


def kernel_name(ref: EnvRef, kernel: str | None = None, build_id: int | None = None) -> str:
    """``condaops-<ns>-<name>[-<build>][-<kernel>]``, lowercase as Jupyter lists names."""
    parts = ["condaops", ref.namespace, ref.name]
    if build_id is not None:
        parts.append(str(build_id))
    if kernel is not None:
        parts.append(kernel)
    name = "-".join(parts).lower()
    return name if _KERNEL_NAME.match(name) else re.sub(r"[^a-z0-9._-]", "_", name)


def display_name(
    template: str,
    ref: EnvRef,
    source: KernelSource,
    *,
    primary: bool,
    build_id: int | None,
    override: str | None = None,
) -> str:
    """``tools (ds)`` (the ``kernels.display_name`` pattern), or the environment file's own
    ``override`` as written; another kernel of the environment adds its own name (``tools
    (ds) · R``), a pinned one its build (``tools (ds), build 41``)."""
    text = override or template.format(name=ref.name, namespace=ref.namespace)
    if not primary:
        text += f" · {source.spec.get('display_name') or source.name}"
    if build_id is not None:
        text += f", build {build_id}"
    return text


def render_kernel(
    env: EnvSnapshot,
    source: KernelSource,
    build: BuildSnapshot,
    *,
    root: str,
    display: str,
    pinned: bool,
) -> dict[str, Any]:
    """The kernel.json for ``source`` run from ``root`` (the stable link, or a pinned
    build's prefix). Raises ``KernelCommandMissing`` when its program is not in the
    environment."""
    argv = [str(arg) for arg in source.spec.get("argv") or ()]
    if not argv:
        raise KernelCommandMissing(f"{env.ref}: kernel '{source.name}' has an empty argv in its kernel.json")
    # Jupyter fills {resource_dir} with the folder it found the spec in, which holds only
    # kernel.json and the logos here: point it at the kernel's own folder in the environment.
    resources = relocate(str(source.folder), build.prefix, root)
    argv = [relocate(arg, build.prefix, root).replace("{resource_dir}", resources) for arg in argv]
    program = argv[0]
    if "/" not in program:  # a bare name: Jupyter would run its own python; use the environment's
        if program not in env.programs:
            raise KernelCommandMissing(
                f"{env.ref}: kernel '{source.name}' runs '{program}', which is not in the environment's bin/; "
                "add the package that provides it"
            )
        argv[0] = f"{root}/bin/{program}"
    shipped_env = {str(k): relocate(str(v), build.prefix, root) for k, v in (source.spec.get("env") or {}).items()}
    path = ":".join([*(relocate(p, build.prefix, root) for p in build.path), f"{root}/bin", "${PATH}"])
    activation = {"PATH": path, "CONDA_PREFIX": root, "CONDA_DEFAULT_ENV": conda_name(env.ref)}
    hooks = {k: relocate(v, build.prefix, root) for k, v in build.activation}  # env_vars.d, activate.d
    # Keys the shipped spec has and condaops does not set (interrupt_mode,
    # kernel_protocol_version...) are kept as they are.
    spec: dict[str, Any] = {
        **dict(source.spec),
        "argv": argv,
        "display_name": display,
        "language": source.spec.get("language") or "",
        "env": {**shipped_env, **activation, **dict(env.variables), **hooks},
        "metadata": {
            **dict(source.spec.get("metadata") or {}),
            "condaops": metadata(env.ref, build, kernel=source.name, pinned=pinned),
        },
    }
    return spec


def metadata(ref: EnvRef, build: BuildSnapshot, *, kernel: str, pinned: bool) -> dict[str, Any]:
    """What a kernel says about where it comes from; ``environment`` also marks it as
    written by condaops for that environment (``written_for``)."""
    return {
        "environment": str(ref),
        "build": build.build_id,
        "revision": build.revision,
        "spec_hash": build.spec_hash,
        "kernel": kernel,
        "pinned": pinned,
    }


def kernel_json(spec: Mapping[str, Any]) -> bytes:
    """The file's bytes: stable key order, so an unchanged spec rewrites nothing."""
    return (json.dumps(spec, indent=1, sort_keys=True) + "\n").encode()


def written_for(data: Mapping[str, Any]) -> str | None:
    """The environment a kernel.json was written for by condaops, or None if not ours."""
    meta = data.get("metadata")
    ours = meta.get("condaops") if isinstance(meta, Mapping) else None
    return str(ours["environment"]) if isinstance(ours, Mapping) and ours.get("environment") else None


def conda_name(ref: EnvRef) -> str:
    """The stable name ``conda activate`` knows the environment by (``names``)."""
    return f"{ref.namespace}-{ref.name}"


def relocate(text: str, prefix: str, root: str) -> str:
    """Paths into the build's prefix (xeus kernels carry them) go through ``root``."""
    return root if text == prefix else text.replace(prefix + "/", root + "/")
