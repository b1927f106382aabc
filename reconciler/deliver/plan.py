"""What one environment should have delivered: kernels, modulefiles, a name. Pure.

``plan_deliveries(env, where)`` decides from plain data (``EnvSnapshot``, ``Where``) and
returns the units to write with the deliveries they carry; it reads nothing and writes
nothing. An environment without a current build (never linked, retired) gets nothing,
which is how its deliveries are withdrawn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from condaops.reconciler.deliver import kernels, modules
from condaops.reconciler.deliver.model import (
    KERNEL,
    MODULE,
    NAME,
    BuildSnapshot,
    DeliveryPlan,
    EnvSnapshot,
    KernelUnit,
    ModuleUnit,
    NameUnit,
    Planned,
)
from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.model import DeliveryRecord


@dataclass(frozen=True, slots=True)
class Where:
    """Where deliveries go (from the settings); None = that kind is off."""

    kernels: Path | None = None
    pin_kernels: bool = False
    display_name: str = "{name} ({namespace})"
    modules: Path | None = None
    module_format: str = "lua"  # modules.LUA (the field above hides the module here)
    names: Path | None = None
    store: Path | None = None  # names inside the store link relatively (the store can move)


def plan_deliveries(env: EnvSnapshot, where: Where) -> DeliveryPlan:
    """Every unit ``env`` should have, in a stable order. Pure."""
    if env.current is None:
        return DeliveryPlan()
    planned: list[Planned] = []
    problems: list[DeliveryRecord] = []
    if where.kernels is not None:
        _plan_kernels(env, where, where.kernels, planned, problems)
    if where.modules is not None:
        planned.append(_plan_modules(env, where, where.modules))
    if where.names is not None:
        planned.append(_plan_name(env, where.names, where.store))
    return DeliveryPlan(tuple(planned), tuple(problems))


def _plan_kernels(
    env: EnvSnapshot, where: Where, folder: Path, planned: list[Planned], problems: list[DeliveryRecord]
) -> None:
    assert env.current is not None
    pins = env.kept if where.pin_kernels else ()
    for index, source in enumerate(kernels.ordered(env.kernels)):
        primary = index == 0
        kernel = None if primary else source.name
        for build, pinned in ((env.current, False), *((b, True) for b in pins)):
            name = kernels.kernel_name(env.ref, kernel, build.build_id if pinned else None)
            root = build.prefix if pinned else env.link
            display = kernels.display_name(
                where.display_name,
                env.ref,
                source,
                primary=primary,
                build_id=build.build_id if pinned else None,
                override=env.display_name,
            )
            path = folder / name
            try:
                spec = kernels.render_kernel(env, source, build, root=root, display=display, pinned=pinned)
            except CondaopsError as exc:
                error = f"{exc.reason}: {exc.message}"
                problems.append(DeliveryRecord(KERNEL, name, build.build_id, str(path), name, error))
                continue
            logos = tuple(source.folder / logo for logo in source.logos)
            unit = KernelUnit(path, kernels.kernel_json(spec), logos)
            planned.append(Planned(unit, (DeliveryRecord(KERNEL, name, build.build_id, str(path), name),)))


def _plan_modules(env: EnvSnapshot, where: Where, folder: Path) -> Planned:
    assert env.current is not None
    current = _module_version(env, env.current, modules.CURRENT, env.link)
    pinned = [_module_version(env, b, str(b.build_id), b.prefix) for b in env.kept]
    versions = [current, *pinned]
    path = folder / env.ref.namespace / env.ref.name
    extension = ".lua" if where.module_format in (modules.LUA, modules.BOTH) else ""
    deliveries = tuple(
        DeliveryRecord(
            MODULE,
            v.module if v is current else v.full_name,
            v.build_id,
            str(path / f"{v.version}{extension}"),
            f"module load {v.module if v is current else v.full_name}",
        )
        for v in versions
    )
    return Planned(ModuleUnit(path, modules.module_files(versions, where.module_format)), deliveries)


def _module_version(env: EnvSnapshot, build: BuildSnapshot, version: str, root: str) -> modules.ModuleVersion:
    return modules.ModuleVersion(
        ref=env.ref,
        version=version,
        root=root,
        build_id=build.build_id,
        revision=build.revision,
        source_path=env.source_path,
        packages=build.packages,
        variables=env.variables,
        conda_name=kernels.conda_name(env.ref),
        display_name=env.display_name,
        activation=tuple((k, kernels.relocate(v, build.prefix, root)) for k, v in build.activation),
        path=tuple(kernels.relocate(p, build.prefix, root) for p in build.path),
    )


def _plan_name(env: EnvSnapshot, folder: Path, store: Path | None) -> Planned:
    assert env.current is not None
    name = kernels.conda_name(env.ref)
    path = folder / name
    target = env.link
    if store is not None and Path(env.link).is_relative_to(store) and folder.is_relative_to(store):
        target = os.path.relpath(env.link, folder)  # the store can be moved or mounted elsewhere
    delivery = DeliveryRecord(NAME, name, env.current.build_id, str(path), f"conda activate {name}")
    return Planned(NameUnit(path, target), (delivery,))
