"""Deliveries end to end: environments built through the CLI show up as modules for Lmod
and Tcl environment-modules, as names for conda's ``envs_dirs`` and as Jupyter kernelspecs,
follow rebuilds, rollbacks and gc, and go when the environment is retired.

The ``tool`` channel (tests/integration/conftest.py) has ``tool`` 1.0/2.0 (``bin/tool``
prints its version and the prefix it was installed for); ``toolkernel`` adds a kernelspec
that runs ``tool`` (listed by jupyter_client, never started: test_kernels.py starts a real
ipykernel).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from tests.integration.conftest import ALIAS, Project, tool_packages
from tests.support.channels import PackageSpec, make_channel
from tests.support.modules import BASE_PATH, lmod_init, run_bash, tcl_modules_init
from tests.support.registry_clients import require_module

pytestmark = pytest.mark.integration

HOOK_SCRIPT = 'export TOOL_HOME="$CONDA_PREFIX/share/tool"\nexport PATH="$CONDA_PREFIX/libexec/tool:$PATH"\n'
KERNEL_JSON = json.dumps({"argv": ["tool", "-f", "{connection_file}"], "display_name": "Tool", "language": "tool"})


def tool_env(constraint: str, *, kernel: bool = False) -> str:
    extra = "  - toolkernel\n" if kernel else ""
    return f"channels: [testchan]\ndependencies:\n  - {constraint}\n{extra}variables:\n  GREETING: hello there\n"


@pytest.fixture
def channel(tmp_path_factory: pytest.TempPathFactory, http_channel):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("deliverchan")
    kernel = PackageSpec(
        "toolkernel",
        "1.0",
        depends=("tool",),
        files={
            "share/jupyter/kernels/toolk/kernel.json": KERNEL_JSON,
            "share/jupyter/kernels/toolk/logo-svg.svg": "<svg/>",
        },
    )
    hooks = PackageSpec(  # activation hooks, as GDAL or openjdk ship them
        "toolhooks",
        "1.0",
        files={
            "etc/conda/activate.d/toolhooks.sh": HOOK_SCRIPT,
            "etc/conda/activate.d/zz-broken.sh": "exit 3\n",  # ends the shell: skipped
            # the spec's GREETING wins over the file's, as in conda
            "etc/conda/env_vars.d/toolhooks.json": '{"TOOL_MODE": "fast", "GREETING": "from env_vars.d"}',
        },
    )
    make_channel(root, [*tool_packages(), kernel, hooks])
    return http_channel(root)


@pytest.fixture
def site(project, channel, tmp_path: Path) -> Project:  # type: ignore[no-untyped-def]
    """A project whose builds write modulefiles (both formats) and kernels into two folders."""
    return project(
        {ALIAS + "testchan": channel},
        publish={"enabled": False},
        modules={"directory": str(tmp_path / "modulefiles"), "format": "both"},
        kernels={"directory": str(tmp_path / "jupyter" / "kernels")},
        prune=True,
    )


def build(p: Project, ref: str, text: str) -> dict:
    p.write_env(f"{ref}.yaml", text)
    code, _, err = p.cli("reconcile", "--once", "--wait")
    assert code == 0, err
    return p.status()[ref]


def module_script(p: Project, init: str, body: str) -> tuple[int, str, str]:
    folder = p.config["modules"]["directory"]
    return run_bash(f"{init}\nmodule use {shlex.quote(folder)}\n{body}")


# --- modules ------------------------------------------------------------------------------


def test_lmod_loads_the_current_build_and_pins_kept_ones(site: Project) -> None:
    build(site, "ds/tools", tool_env("tool=1.0"))
    item = build(site, "ds/tools", tool_env("tool=2.0"))
    link = site.link("ds/tools")
    code, out, err = module_script(
        site,
        lmod_init(),
        """
        module -t avail ds/tools 2>&1; module --default -t avail ds/tools 2>&1
        echo "--- load"
        module load ds/tools && tool && echo "prefix=$CONDA_PREFIX greeting=$GREETING"
        echo "--- pinned"
        module load ds/tools/1 && tool
        echo "--- unload"
        module unload ds/tools && echo "path=$PATH prefix=${CONDA_PREFIX-unset}"
        echo "--- whatis"
        module whatis ds/tools 2>&1
        echo "--- help"
        module help ds/tools 2>&1
        """,
    )
    assert code == 0, err
    avail, rest = out.split("--- load\n")
    listed = avail.split()
    assert listed.count("ds/tools/current") == 2 and listed.count("ds/tools/1") == 1  # the default is listed twice
    assert {"ds/tools/1", "ds/tools/2"} <= set(listed)
    loaded, rest = rest.split("--- pinned\n")
    assert loaded.splitlines()[0].startswith("tool 2.0 ")  # the current build
    assert f"prefix={link} greeting=hello there" in loaded
    pinned, rest = rest.split("--- unload\n")
    assert pinned.startswith("tool 1.0 ")
    unloaded, rest = rest.split("--- whatis\n")
    assert unloaded.strip() == f"path={BASE_PATH} prefix=unset"
    whatis, help_text = rest.split("--- help\n")
    assert f"Version: current (build {item['build_id']}" in whatis and "Packages: tool 2.0" in whatis
    assert "Source: ds/tools.yaml" in help_text and "conda activate ds-tools" in help_text


def test_lmod_keeps_one_condaops_environment_loaded(site: Project) -> None:
    build(site, "ds/tools", tool_env("tool=1.0"))
    build(site, "ds/other", tool_env("tool=2.0"))
    init = lmod_init()
    code, out, err = module_script(site, init, "module load ds/tools ds/other 2>&1; module -t list 2>&1")
    assert code == 0, err
    assert "ds/other/current" in out and "ds/tools/current" not in out.split("replacing")[-1].split()  # swapped
    code, out, _ = module_script(
        site, f"export LMOD_AUTO_SWAP=no\n{init}", "module load ds/tools; module load ds/other; module -t list 2>&1"
    )
    assert "ds/tools/current" in out.split() and "ds/other/current" not in out.split()  # refused


def test_tcl_environment_modules(site: Project) -> None:
    build(site, "ds/tools", tool_env("tool=1.0"))
    item = build(site, "ds/tools", tool_env("tool=2.0"))
    build(site, "ds/other", tool_env("tool=1.0"))
    code, out, err = module_script(
        site,
        tcl_modules_init(),
        """
        module -t avail ds/tools 2>&1
        echo "--- load"
        module load ds/tools && tool && echo "prefix=$CONDA_PREFIX greeting=$GREETING"
        echo "--- second"
        module load ds/other 2>&1; echo "status=$?"; module -t list 2>&1
        echo "--- unload"
        module unload ds/tools && echo "path=$PATH prefix=${CONDA_PREFIX-unset}"
        echo "--- pinned"
        module load ds/tools/1 && tool && module unload ds/tools/1
        echo "--- whatis"
        module whatis ds/tools/current 2>&1
        module help ds/tools 2>&1
        """,
    )
    assert code == 0, err
    avail, rest = out.split("--- load\n")
    assert {"ds/tools/current(default)", "ds/tools/1", "ds/tools/2"} <= set(avail.split())
    loaded, rest = rest.split("--- second\n")
    assert loaded.startswith("tool 2.0 ") and f"prefix={site.link('ds/tools')} greeting=hello there" in loaded
    second, rest = rest.split("--- unload\n")
    assert "status=1" in second and "conflict" in second and "ds/other" not in second.split("status=1")[1]
    unloaded, rest = rest.split("--- pinned\n")
    assert unloaded.strip() == f"path={BASE_PATH} prefix=unset"
    pinned, described = rest.split("--- whatis\n")
    assert pinned.startswith("tool 1.0 ")
    assert f"build {item['build_id']}" in described and "Packages: tool 2.0" in described
    assert "Source: ds/tools.yaml" in described


# --- names for conda ----------------------------------------------------------------------


def test_names_for_conda_follow_the_link(site: Project) -> None:
    first = build(site, "ds/tools", tool_env("tool=1.0"))
    name = site.store / "envs-by-name" / "ds-tools"
    assert name.is_symlink() and os.readlink(name) == "../ds/envs/tools"
    # conda lists an entry of envs_dirs when <entry>/conda-meta/history exists, and activates
    # <envs_dir>/<name> when it is a folder: both through the links.
    assert (name / "conda-meta" / "history").is_file()
    assert name.resolve() == (site.store / first["build_prefix"]).resolve()
    second = build(site, "ds/tools", tool_env("tool=2.0"))
    assert name.resolve() == (site.store / second["build_prefix"]).resolve()
    uses = {(d["kind"], d["use"]) for d in second["deliveries"]}
    assert ("name", "conda activate ds-tools") in uses


# --- kernels ------------------------------------------------------------------------------


def kernel_specs(site: Project) -> dict[str, dict]:
    require_module("jupyter_client", "jupyter-client")
    from jupyter_client.kernelspec import KernelSpecManager

    manager = KernelSpecManager(kernel_dirs=[site.config["kernels"]["directory"]])
    return {name: manager.get_kernel_spec(name).to_dict() for name in manager.find_kernel_specs()}


def test_kernels_follow_rebuilds_rollback_gc_and_retire(site: Project) -> None:
    site.write_config(kernels={**site.config["kernels"], "pin_builds": True})
    build(site, "ds/tools", tool_env("tool=1.0", kernel=True))
    item = build(site, "ds/tools", tool_env("tool=2.0", kernel=True))
    link = site.link("ds/tools")
    specs = kernel_specs(site)
    assert sorted(specs) == ["condaops-ds-tools", "condaops-ds-tools-1", "condaops-ds-tools-2"]
    current = specs["condaops-ds-tools"]
    assert current["argv"] == [f"{link}/bin/tool", "-f", "{connection_file}"]
    assert current["display_name"] == "tools (ds)" and current["env"]["GREETING"] == "hello there"
    assert current["metadata"]["condaops"]["build"] == item["build_id"]
    assert specs["condaops-ds-tools-1"]["argv"][0].startswith(str(site.store / "ds"))
    folder = Path(site.config["kernels"]["directory"])
    assert (folder / "condaops-ds-tools" / "logo-svg.svg").read_text() == "<svg/>"

    code, _, err = site.cli("rollback", "ds/tools", "1")
    assert code == 0, err
    assert kernel_specs(site)["condaops-ds-tools"]["metadata"]["condaops"]["build"] == 1
    modulefile = Path(site.config["modules"]["directory"]) / "ds" / "tools" / "current.lua"
    assert "(build 1;" in modulefile.read_text()

    assert build(site, "ds/tools", tool_env("tool>=2.0", kernel=True))["build_id"] == 3  # a change resumes building
    code, _, err = site.cli("gc", "--keep", "0")
    assert code == 0, err
    assert sorted(kernel_specs(site)) == ["condaops-ds-tools", "condaops-ds-tools-3"]
    left = sorted(p.name for p in modulefile.parent.iterdir())
    assert left == [".modulerc", ".modulerc.lua", "3", "3.lua", "current", "current.lua"]

    build(site, "ds/other", tool_env("tool=1.0"))  # a source left empty retires nothing
    (site.envs / "ds" / "tools.yaml").unlink()
    code, _, err = site.cli("reconcile", "--once", "--wait")
    assert code == 0, err
    assert kernel_specs(site) == {}
    assert not modulefile.parent.exists() and (modulefile.parent.parent / "other" / "current.lua").exists()
    assert not (site.store / "envs-by-name" / "ds-tools").exists()
    assert "ds/tools" not in site.status()


def test_the_file_names_its_kernels_and_renaming_rebuilds_nothing(site: Project) -> None:
    named = tool_env("tool=1.0", kernel=True) + "condaops:\n  display_name: Team tools\n"
    item = build(site, "ds/tools", named)
    assert item["display_name"] == "Team tools"
    assert kernel_specs(site)["condaops-ds-tools"]["display_name"] == "Team tools"
    modulefile = Path(site.config["modules"]["directory"]) / "ds" / "tools" / "current.lua"
    assert "Description: Team tools (conda environment ds/tools" in modulefile.read_text()

    renamed = build(site, "ds/tools", named.replace("Team tools", "Werkzeuge (Team)"))
    assert (renamed["build_id"], renamed["latest_build_id"]) == (item["build_id"], item["build_id"])  # no build
    assert renamed["display_name"] == "Werkzeuge (Team)"
    assert kernel_specs(site)["condaops-ds-tools"]["display_name"] == "Werkzeuge (Team)"
    assert "Description: Werkzeuge (Team) (conda environment" in modulefile.read_text()

    unset = build(site, "ds/tools", tool_env("tool=1.0", kernel=True))
    assert unset["display_name"] is None and unset["latest_build_id"] == item["build_id"]
    assert kernel_specs(site)["condaops-ds-tools"]["display_name"] == "tools (ds)"

    site.write_env("ds/tools.yaml", named.replace("Team tools", "[a, b]"))  # rejected: the last good one stays
    code, _, err = site.cli("reconcile", "--once", "--wait")
    assert code == 1, err
    bad = site.status()["ds/tools"]
    assert bad["reason"] == "SpecInvalid" and bad["build_id"] == item["build_id"]
    assert "ds/tools.yaml:" in bad["message"] and "'condaops.display_name' must be a non-empty string" in bad["message"]
    assert kernel_specs(site)["condaops-ds-tools"]["display_name"] == "tools (ds)"


def test_activation_hooks_are_applied_by_kernels_and_both_module_tools(site: Project) -> None:
    first = build(site, "ds/tools", tool_env("tool=1.0\n  - toolhooks", kernel=True))
    build(site, "ds/tools", tool_env("tool=2.0\n  - toolhooks", kernel=True))
    link, pinned = site.link("ds/tools"), str((site.store / first["build_prefix"]).absolute())
    env = kernel_specs(site)["condaops-ds-tools"]["env"]
    assert env["PATH"] == f"{link}/libexec/tool:{link}/bin:${{PATH}}"
    assert (env["TOOL_HOME"], env["TOOL_MODE"], env["GREETING"]) == (f"{link}/share/tool", "fast", "hello there")
    show = 'echo "path=$PATH home=${TOOL_HOME-unset} mode=${TOOL_MODE-unset}"'
    script = f"module load ds/tools && {show}\nmodule load ds/tools/1 && {show}\nmodule unload ds/tools/1 && {show}\n"
    expected = [
        f"path={link}/libexec/tool:{link}/bin:{BASE_PATH} home={link}/share/tool mode=fast",
        f"path={pinned}/libexec/tool:{pinned}/bin:{BASE_PATH} home={pinned}/share/tool mode=fast",
        f"path={BASE_PATH} home=unset mode=unset",
    ]
    code, out, err = module_script(site, lmod_init(), script)
    assert code == 0 and out.splitlines() == expected, err
    tcl = script.replace("module load ds/tools/1", "module switch ds/tools/1")  # one of the family at a time
    code, out, err = module_script(site, tcl_modules_init(), tcl)
    assert code == 0 and out.splitlines() == expected, err


def test_the_environment_page_and_api_say_how_to_use_it(site: Project) -> None:
    from litestar.testing import TestClient

    from condaops.config import load_settings
    from condaops.reconciler.state.db import make_engine
    from condaops.web.app import create_app

    named = tool_env("tool=1.0", kernel=True) + "condaops:\n  display_name: Team <tools>\n"
    item = build(site, "ds/tools", named)
    settings = load_settings(site.config_file, environ={})
    engine = make_engine(settings.database_url)
    try:
        with TestClient(create_app(settings, engine, cache_seconds=0)) as client:
            page = client.get("/environments/ds/tools")
            detail = client.get("/api/v1/environments/ds/tools").json()
    finally:
        engine.dispose()
    assert page.status_code == 200
    facts, use_it = page.text.split("<h2>Use it</h2>", 1)
    assert "<dt>Display name</dt><dd>Team &lt;tools&gt; " in facts
    for label, command in [
        ("Environment module", "module load ds/tools"),
        ("Jupyter kernel", "condaops-ds-tools"),
        ("conda, by name", "conda activate ds-tools"),
    ]:
        assert re.search(rf'class="label">{re.escape(label)}</span><code[^>]*>{re.escape(command)}</code>', use_it), (
            label
        )
    uses = {(d["kind"], d["use"], d["build_id"]) for d in detail["deliveries"]}
    assert ("kernel", "condaops-ds-tools", item["build_id"]) in uses
    assert ("module", "module load ds/tools/1", item["build_id"]) in uses


def test_a_kernel_someone_else_wrote_is_left_alone(site: Project) -> None:
    folder = Path(site.config["kernels"]["directory"]) / "condaops-ds-tools"
    folder.mkdir(parents=True)
    theirs = json.dumps({"argv": ["python"], "display_name": "Theirs", "language": "python"})
    (folder / "kernel.json").write_text(theirs)
    item = build(site, "ds/tools", tool_env("tool=1.0", kernel=True))
    assert item["state"] == "ready"
    (kernel,) = [d for d in item["deliveries"] if d["kind"] == "kernel"]
    assert kernel["error"].startswith("KernelNameTaken: ") and str(folder) in kernel["error"]
    assert (folder / "kernel.json").read_text() == theirs
    assert all(d["error"] is None for d in item["deliveries"] if d["kind"] != "kernel")


def test_an_unwritable_folder_is_reported_and_the_build_stands(site: Project, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    site.write_config(modules={"directory": str(blocker / "modulefiles")})
    item = build(site, "ds/tools", tool_env("tool=1.0"))
    assert item["state"] == "ready" and item["build_id"] == 1
    errors = [d["error"] for d in item["deliveries"] if d["kind"] == "module"]
    assert errors and all(e.startswith("DeliveryFailed: ds/tools: cannot write ") for e in errors)


def test_modulefiles_and_names_someone_else_made_are_left_alone(site: Project) -> None:
    theirs = Path(site.config["modules"]["directory"]) / "ds" / "tools" / "1.0.lua"
    theirs.parent.mkdir(parents=True)
    theirs.write_text('prepend_path("PATH", "/opt/tools/bin")\n')
    taken = site.store / "envs-by-name" / "ds-tools"
    taken.mkdir(parents=True)
    item = build(site, "ds/tools", tool_env("tool=1.0"))
    errors = {d["kind"]: d["error"] for d in item["deliveries"]}
    assert errors["module"].startswith("ModuleNameTaken: ") and "1.0.lua" in errors["module"]
    assert errors["name"].startswith("NameTaken: ")
    assert sorted(p.name for p in theirs.parent.iterdir()) == ["1.0.lua"] and taken.is_dir() and not taken.is_symlink()


def test_turning_deliveries_on_delivers_existing_environments(project, channel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = project({ALIAS + "testchan": channel}, publish={"enabled": False}, names={"enabled": False})
    build(p, "ds/tools", tool_env("tool=1.0", kernel=True))
    assert p.status()["ds/tools"]["deliveries"] == []
    p.write_config(kernels={"directory": str(tmp_path / "kernels")}, modules={"directory": str(tmp_path / "mods")})
    code, _, err = p.cli("reconcile", "--once")  # no build: the start checks every environment
    assert code == 0, err
    uses = sorted(d["use"] for d in p.status()["ds/tools"]["deliveries"])
    assert uses == ["condaops-ds-tools", "module load ds/tools", "module load ds/tools/1"]
    assert (tmp_path / "kernels" / "condaops-ds-tools" / "kernel.json").is_file()


def test_condaops_retire_withdraws_what_was_delivered(project, channel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    kernels, mods = tmp_path / "kernels", tmp_path / "mods"
    p = project(
        {ALIAS + "testchan": channel},
        publish={"enabled": False},
        kernels={"directory": str(kernels)},
        modules={"directory": str(mods), "format": "tcl"},
    )
    build(p, "ds/tools", tool_env("tool=1.0", kernel=True))
    build(p, "ds/other", tool_env("tool=1.0", kernel=True))
    (p.envs / "ds" / "tools.yaml").unlink()  # prune is off: kept, still delivered
    code, _, err = p.cli("reconcile", "--once")
    assert code == 0, err
    assert (kernels / "condaops-ds-tools" / "kernel.json").is_file() and (mods / "ds" / "tools" / "current").is_file()
    code, _, err = p.cli("retire", "ds/tools")
    assert code == 0, err
    assert sorted(k.name for k in kernels.iterdir()) == ["condaops-ds-other"]
    assert sorted(m.name for m in (mods / "ds").iterdir()) == ["other"]
    assert not (p.store / "envs-by-name" / "ds-tools").exists() and (p.store / "envs-by-name" / "ds-other").is_symlink()


def test_names_alone_read_only_the_current_build(project, channel) -> None:  # type: ignore[no-untyped-def]
    """The default deliveries (names only) follow each build from a snapshot of the current
    build alone (no packages, activation or kept builds read after every build): it plans
    exactly what the full snapshot plans, and the name follows the link."""
    from condaops.config.load import load_settings
    from condaops.reconciler.deliver.observe import snapshot
    from condaops.reconciler.deliver.plan import plan_deliveries
    from condaops.reconciler.deliver.sync import Deliveries, where_of
    from condaops.reconciler.model import EnvRef
    from condaops.reconciler.state.db import make_engine
    from condaops.reconciler.state.recorder import Recorder
    from condaops.reconciler.state.schema import utcnow
    from condaops.reconciler.store import StoreLayout

    p = project({ALIAS + "testchan": channel}, publish={"enabled": False})
    build(p, "ds/tools", tool_env("tool=1.0"))
    second = build(p, "ds/tools", tool_env("tool=2.0"))
    assert (p.store / "envs-by-name" / "ds-tools").resolve() == (p.store / second["build_prefix"]).resolve()
    settings = load_settings(p.config_file, environ={}, cwd=p.root)
    engine = make_engine(settings.database_url)
    try:
        deliveries = Deliveries(settings, engine, Recorder(engine, utcnow))
        assert not deliveries.detail  # names only: the default
        ref, layout, where = EnvRef("ds", "tools"), StoreLayout.of(settings), where_of(settings)
        lean = snapshot(engine, layout, ref, platform=deliveries.platform, detail=False)
        full = snapshot(engine, layout, ref, platform=deliveries.platform)
        assert lean.current is not None and lean.current.build_id == second["build_id"]
        assert full.current is not None and full.current.packages  # what the lean one skips
        assert plan_deliveries(lean, where) == plan_deliveries(full, where)
        assert [d.build_id for d in deliveries.sync(ref)] == [second["build_id"]]
    finally:
        engine.dispose()
