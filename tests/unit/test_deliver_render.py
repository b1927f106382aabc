"""Deliveries decided and rendered from plain data: kernelspecs, modulefiles, names (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from condaops.reconciler.deliver import kernels, modules
from condaops.reconciler.deliver.activate import prepended
from condaops.reconciler.deliver.model import (
    KERNEL,
    KERNEL_COMMAND_MISSING,
    MODULE,
    NAME,
    BuildSnapshot,
    EnvSnapshot,
    KernelSource,
    KernelUnit,
    ModuleUnit,
    NameUnit,
)
from condaops.reconciler.deliver.plan import Where, plan_deliveries
from condaops.reconciler.model import EnvRef

REF = EnvRef("ds", "tools")
STORE = Path("/srv/condaops")
LINK = str(STORE / "ds/envs/tools")
PREFIX_2 = str(STORE / "ds/bbb-tools")
PREFIX_1 = str(STORE / "ds/aaa-tools")
IPYKERNEL = KernelSource(
    "python3",
    {
        "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "metadata": {"debugger": True},
        "kernel_protocol_version": "5.5",
    },
    Path(PREFIX_2) / "share/jupyter/kernels/python3",
    ("logo-64x64.png",),
)
XPYTHON = KernelSource(
    "xpython",
    {"argv": [f"{PREFIX_2}/bin/xpython", "-f", "{connection_file}"], "display_name": "Python (XPython)"},
    Path(PREFIX_2) / "share/jupyter/kernels/xpython",
)
BUILD_2 = BuildSnapshot(2, PREFIX_2, "abc123", "bbb", (("python", "3.11.7"),))
BUILD_1 = BuildSnapshot(1, PREFIX_1, "9f00", "aaa", (("python", "3.11.6"),))


def snapshot(**changes: object) -> EnvSnapshot:
    base: dict[str, object] = dict(
        ref=REF,
        link=LINK,
        current=BUILD_2,
        kept=(BUILD_2, BUILD_1),
        source_path="ds/tools.yaml",
        kernels=(IPYKERNEL,),
        programs=frozenset({"python", "xpython"}),
        variables=(("GREETING", "hello"),),
    )
    return EnvSnapshot(**{**base, **changes})  # type: ignore[arg-type]


# --- kernels ------------------------------------------------------------------------------


def test_kernel_runs_the_environment_through_its_link() -> None:
    spec = kernels.render_kernel(snapshot(), IPYKERNEL, BUILD_2, root=LINK, display="tools (ds)", pinned=False)
    assert spec["argv"] == [f"{LINK}/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert spec["env"] == {
        "PATH": f"{LINK}/bin:${{PATH}}",
        "CONDA_PREFIX": LINK,
        "CONDA_DEFAULT_ENV": "ds-tools",
        "GREETING": "hello",
    }
    assert spec["display_name"] == "tools (ds)"
    assert spec["kernel_protocol_version"] == "5.5"  # keys condaops does not set are kept
    assert spec["metadata"]["debugger"] is True
    assert spec["metadata"]["condaops"] == {
        "environment": "ds/tools",
        "build": 2,
        "revision": "abc123",
        "spec_hash": "bbb",
        "kernel": "python3",
        "pinned": False,
    }
    assert kernels.written_for(json.loads(kernels.kernel_json(spec))) == "ds/tools"


def test_paths_into_the_prefix_go_through_the_root() -> None:
    spec = kernels.render_kernel(snapshot(), XPYTHON, BUILD_2, root=LINK, display="x", pinned=False)
    assert spec["argv"][0] == f"{LINK}/bin/xpython"


def test_a_program_the_environment_lacks_is_reported() -> None:
    with pytest.raises(kernels.KernelCommandMissing, match="'python'.*not in the environment's bin/"):
        kernels.render_kernel(snapshot(programs=frozenset()), IPYKERNEL, BUILD_2, root=LINK, display="x", pinned=False)


@pytest.mark.parametrize(
    ("kernel", "build", "expected"),
    [(None, None, "condaops-ds-tools"), ("ir", None, "condaops-ds-tools-ir"), (None, 41, "condaops-ds-tools-41")],
    ids=["primary", "second-kernel", "pinned"],
)
def test_kernel_names(kernel: str | None, build: int | None, expected: str) -> None:
    assert kernels.kernel_name(REF, kernel, build) == expected
    assert kernels.kernel_name(EnvRef("DS", "Tools")) == "condaops-ds-tools"  # Jupyter lists names lowercase


def test_python_then_r_get_the_plain_name() -> None:
    r = KernelSource("ir", {}, Path("/x"))
    assert [k.name for k in kernels.ordered([XPYTHON, r, IPYKERNEL])] == ["python3", "ir", "xpython"]


# --- modules ------------------------------------------------------------------------------


def version(v: str = "current", **changes: object) -> modules.ModuleVersion:
    base: dict[str, object] = dict(
        ref=REF,
        version=v,
        root=LINK,
        build_id=2,
        revision="abc123",
        source_path="ds/tools.yaml",
        packages=(("python", "3.11.7"),),
        variables=(("GREETING", 'say "hi" $HOME [x] {y}'),),
        conda_name="ds-tools",
    )
    return modules.ModuleVersion(**{**base, **changes})  # type: ignore[arg-type]


def test_lua_modulefile() -> None:
    text = modules.render_lua(version())
    assert modules.written_for(text) == "ds/tools"
    assert 'family("condaops")' in text
    assert f'prepend_path("PATH", "{LINK}/bin")' in text
    assert f'pushenv("CONDA_PREFIX", "{LINK}")' in text
    assert 'pushenv("GREETING", "say \\"hi\\" $HOME [x] {y}")' in text
    assert 'whatis("Packages: python 3.11.7")' in text
    assert 'whatis("Source: ds/tools.yaml")' in text


def test_tcl_modulefile_escapes_what_tcl_would_substitute() -> None:
    text = modules.render_tcl(version())
    assert text.startswith("#%Module1.0\n")
    assert modules.written_for(text) == "ds/tools"
    assert "family condaops" in text
    assert 'pushenv "GREETING" "say \\"hi\\" \\$HOME \\[x\\] \\{y\\}"' in text


@pytest.mark.parametrize(
    ("fmt", "names"),
    [
        ("lua", [".modulerc.lua", "2.lua", "current.lua"]),
        ("tcl", [".modulerc", "2", "current"]),
        ("both", [".modulerc", ".modulerc.lua", "2", "2.lua", "current", "current.lua"]),
    ],
    ids=["lua", "tcl", "both"],
)
def test_module_files_per_format(fmt: str, names: list[str]) -> None:
    files = modules.module_files([version(), version("2", root=PREFIX_2)], fmt)
    assert sorted(files) == names
    rc = files.get(".modulerc.lua") or files[".modulerc"]
    assert "ds/tools/current" in rc and "default" in rc


# --- plan ---------------------------------------------------------------------------------

WHERE = Where(kernels=Path("/k"), modules=Path("/m"), names=STORE / "envs-by-name", store=STORE)


def test_plan_writes_kernel_module_and_name() -> None:
    plan = plan_deliveries(snapshot(), WHERE)
    units = [p.unit for p in plan.planned]
    assert [type(u) for u in units] == [KernelUnit, ModuleUnit, NameUnit]
    kernel, module, name = units
    assert kernel.path == Path("/k/condaops-ds-tools")  # type: ignore[union-attr]
    assert kernel.logos == (IPYKERNEL.folder / "logo-64x64.png",)  # type: ignore[union-attr]
    assert module.path == Path("/m/ds/tools")  # type: ignore[union-attr]
    assert sorted(module.files) == [".modulerc.lua", "1.lua", "2.lua", "current.lua"]  # type: ignore[union-attr]
    assert name.target == "../ds/envs/tools"  # type: ignore[union-attr]
    uses = [(d.kind, d.use, d.build_id) for p in plan.planned for d in p.deliveries]
    assert uses == [
        (KERNEL, "condaops-ds-tools", 2),
        (MODULE, "module load ds/tools", 2),
        (MODULE, "module load ds/tools/2", 2),
        (MODULE, "module load ds/tools/1", 1),
        (NAME, "conda activate ds-tools", 2),
    ]


def test_pinned_kernels_point_at_their_builds() -> None:
    where = Where(kernels=Path("/k"), pin_kernels=True)
    units = [p.unit for p in plan_deliveries(snapshot(), where).planned]
    assert [u.path.name for u in units] == ["condaops-ds-tools", "condaops-ds-tools-2", "condaops-ds-tools-1"]
    pinned = json.loads(units[2].kernel_json)  # type: ignore[union-attr]
    assert pinned["argv"][0] == f"{PREFIX_1}/bin/python"
    assert pinned["display_name"] == "tools (ds), build 1"
    assert pinned["metadata"]["condaops"]["pinned"] is True


def test_nothing_for_an_environment_without_a_current_build() -> None:
    assert plan_deliveries(snapshot(current=None), WHERE).planned == ()


def test_a_kernel_that_cannot_run_is_a_problem_not_a_unit() -> None:
    plan = plan_deliveries(snapshot(programs=frozenset()), Where(kernels=Path("/k")))
    assert plan.planned == ()
    (problem,) = plan.problems
    assert problem.error is not None and problem.error.startswith(KERNEL_COMMAND_MISSING)


def test_names_outside_the_store_link_absolutely() -> None:
    plan = plan_deliveries(snapshot(), Where(names=Path("/shared/envs"), store=STORE))
    assert plan.planned[0].unit.target == LINK  # type: ignore[union-attr]


def test_the_file_display_name_replaces_the_pattern_everywhere() -> None:
    env = snapshot(kernels=(IPYKERNEL, XPYTHON), display_name="Data {tools} 2026")  # braces kept as written
    where = Where(kernels=Path("/k"), pin_kernels=True, display_name="{namespace}: {name}", modules=Path("/m"))
    planned = plan_deliveries(env, where).planned
    shown = {
        p.unit.path.name: json.loads(p.unit.kernel_json)["display_name"]
        for p in planned
        if isinstance(p.unit, KernelUnit)
    }
    assert shown == {
        "condaops-ds-tools": "Data {tools} 2026",
        "condaops-ds-tools-2": "Data {tools} 2026, build 2",
        "condaops-ds-tools-1": "Data {tools} 2026, build 1",
        "condaops-ds-tools-xpython": "Data {tools} 2026 · Python (XPython)",
        "condaops-ds-tools-2-xpython": "Data {tools} 2026 · Python (XPython), build 2",
        "condaops-ds-tools-1-xpython": "Data {tools} 2026 · Python (XPython), build 1",
    }
    (module,) = [p.unit for p in planned if isinstance(p.unit, ModuleUnit)]
    assert (
        'whatis("Description: Data {tools} 2026 (conda environment ds/tools built by condaops)")'
        in (module.files["current.lua"])
    )
    without = plan_deliveries(snapshot(), where).planned
    assert json.loads(without[0].unit.kernel_json)["display_name"] == "ds: tools"  # type: ignore[union-attr]


def test_activation_hooks_are_relocated_to_where_each_delivery_runs() -> None:
    hooked = BuildSnapshot(
        2,
        PREFIX_2,
        "abc",
        "bbb",
        (),
        (("JAVA_HOME", f"{PREFIX_2}/lib/jvm"), ("GREETING", "hooked")),
        (f"{PREFIX_2}/x",),
    )
    where = Where(kernels=Path("/k"), modules=Path("/m"), module_format="both", pin_kernels=True)
    planned = plan_deliveries(snapshot(current=hooked, kept=(hooked,)), where).planned
    current, pinned = (json.loads(p.unit.kernel_json)["env"] for p in planned[:2])  # type: ignore[union-attr]
    assert current["PATH"] == f"{LINK}/x:{LINK}/bin:${{PATH}}" and current["JAVA_HOME"] == f"{LINK}/lib/jvm"
    assert pinned["PATH"] == f"{PREFIX_2}/x:{PREFIX_2}/bin:${{PATH}}" and pinned["JAVA_HOME"] == f"{PREFIX_2}/lib/jvm"
    assert current["GREETING"] == "hooked"  # a hook runs after the spec's variables are set
    files = planned[2].unit.files  # type: ignore[union-attr]
    lua = files["current.lua"].splitlines()
    assert lua.index(f'prepend_path("PATH", "{LINK}/bin")') < lua.index(f'prepend_path("PATH", "{LINK}/x")')
    assert f'pushenv("JAVA_HOME", "{LINK}/lib/jvm")' in lua and 'pushenv("GREETING", "hooked")' in lua
    assert f'prepend-path PATH "{PREFIX_2}/x"' in files["2"]


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("/a:/b:/p/bin:/usr/bin", ("/a", "/b")),
        ("/p/bin:/usr/bin:/z", ()),
        ("/other", ()),
        ("/a::/p/bin:/usr/bin", ("/a",)),
    ],
)
def test_path_entries_a_hook_puts_first(after: str, expected: tuple[str, ...]) -> None:
    assert prepended(after, "/p/bin:/usr/bin") == expected


def test_resource_dir_points_at_the_kernel_folder_in_the_environment() -> None:
    source = KernelSource(
        "xcpp17", {"argv": ["xcpp", "-f", "{connection_file}", "-I{resource_dir}/include"]}, XPYTHON.folder
    )
    spec = kernels.render_kernel(
        snapshot(programs=frozenset({"xcpp"})), source, BUILD_2, root=LINK, display="x", pinned=False
    )
    assert spec["argv"][-1] == f"-I{LINK}/share/jupyter/kernels/xpython/include"
