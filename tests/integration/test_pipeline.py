"""End to end through the CLI: environment files in, built and linked environments out.

Real conda packages, real channels over HTTP on 127.0.0.1 reached through
``channels.mirrors``, real installs, real SQLite state.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import ALIAS

MAIN, R = "https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r"

FLASK_ENV = """\
name: flask
channels:
  - defaults
dependencies:
  - python=2.7
  - flask
"""


def tool_env(constraint: str) -> str:
    return f"channels: [testchan]\ndependencies:\n  - {constraint}\n"


def test_flask_from_realdata_through_a_mirror(project, realdata_channel, empty_channel):
    served = realdata_channel("defaults-2021-py27-flask")
    p = project({MAIN: served, R: empty_channel}, channels={"default": ["defaults"]})
    p.write_env("team/flask.yaml", FLASK_ENV)

    code, _, err = p.cli("reconcile", "--once", "--wait")
    assert code == 0, err

    link = p.link("team/flask")
    run = subprocess.run(
        [link / "bin/python", "-c", "import flask; print(flask.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == "1.1.2"
    assert served.request_count("/linux-64/repodata.json") >= 1  # the mirror was used
    assert served.request_count("/linux-64/python-2.7.18") >= 1

    item = p.status()["team/flask"]
    assert item["state"] == "ready" and item["build_id"] == 1
    assert item["prefix"] == str(link)
    assert Path(item["build_prefix"]).name == f"{item['spec_hash']}-flask"
    assert os.readlink(link) == f"../{item['spec_hash']}-flask"
    # Published by default (its own job after the build): the conda-pack tarball, the SBOM
    # and the image (no signatures: no signing key is configured).
    assert set(item["artifacts"]) == {
        "conda-lock",
        "explicit-linux-64",
        "environment",
        "pixi-lock",
        "log",
        "conda-pack",
        "sbom",
        "image",
    }
    explicit = Path(item["artifacts"]["explicit-linux-64"]).read_text()
    assert "@EXPLICIT" in explicit
    assert f"{MAIN}/linux-64/python-2.7.18" in explicit  # canonical URLs, not the mirror's
    assert "127.0.0.1" not in explicit
    pinned = yaml.safe_load(Path(item["artifacts"]["environment"]).read_text())
    assert "flask=1.1.2=" in " ".join(pinned["dependencies"])
    lock = yaml.safe_load(Path(item["artifacts"]["conda-lock"]).read_text())
    assert {pkg["name"] for pkg in lock["package"]} >= {"python", "flask", "werkzeug", "jinja2"}


def test_spec_change_switches_the_link_and_rollback_returns(project, tool_channel):
    p = project({ALIAS + "testchan": tool_channel})
    p.write_env("team/tool.yaml", tool_env("tool=1.0"))
    assert p.cli("reconcile", "--once", "--wait")[0] == 0
    link = p.link("team/tool")
    first = link.resolve()
    assert _run_tool(link) == f"tool 1.0 {first}"  # the prefix placeholder was rewritten

    p.write_env("team/tool.yaml", tool_env("tool=2.0"))
    code, out, _ = p.cli("plan")
    assert code == 1 and "build   team/tool  SpecChanged" in out
    assert p.cli("reconcile", "--once", "--wait")[0] == 0
    second = link.resolve()
    assert second != first and first.is_dir()  # the old build stays on disk
    assert _run_tool(link) == f"tool 2.0 {second}"
    item = p.status()["team/tool"]
    assert (item["state"], item["build_id"]) == ("ready", 2)

    code, out, _ = p.cli("rollback", "team/tool", "1")
    assert code == 0, out
    assert link.resolve() == first
    assert _run_tool(link) == f"tool 1.0 {first}"
    item = p.status()["team/tool"]
    assert (item["state"], item["reason"], item["build_id"]) == ("ready", "RolledBack", 1)
    code, out, _ = p.cli("plan")
    assert code == 0, out  # the rollback holds while the spec stays the same
    assert p.cli("reconcile", "--once", "--wait")[0] == 0
    assert link.resolve() == first

    p.write_env("team/tool.yaml", tool_env("tool >=2.0,<3"))  # a new change resumes building
    assert p.cli("reconcile", "--once", "--wait")[0] == 0
    assert _run_tool(link).startswith("tool 2.0 ")
    assert p.status()["team/tool"]["build_id"] == 3


def test_rollback_refuses_what_it_cannot_do(project, tool_channel):
    p = project({ALIAS + "testchan": tool_channel})
    p.write_env("team/tool.yaml", tool_env("tool=1.0"))
    assert p.cli("reconcile", "--once", "--wait")[0] == 0
    for args, status, expected in [
        (("team/none", "1"), 1, "no environment team/none is recorded"),  # an unknown environment: 1
        (("team/tool", "9"), 2, "build 9 does not belong to team/tool"),
    ]:
        code, _, err = p.cli("rollback", *args)
        assert code == status and expected in err


def test_gc_keeps_the_current_build_and_every_lockfile(project, tool_channel):
    p = project({ALIAS + "testchan": tool_channel})
    for constraint in ("tool=1.0", "tool=2.0", "tool >=1"):
        p.write_env("team/tool.yaml", tool_env(constraint))
        assert p.cli("reconcile", "--once", "--wait")[0] == 0
    builds = json.loads(p.cli("history", "team/tool", "--json")[1])
    assert [b["build_id"] for b in builds] == [3, 2, 1]
    prefixes = {b["build_id"]: p.store / b["prefix"] for b in builds}

    code, out, _ = p.cli("gc", "--keep", "1", "--dry-run")
    assert code == 0 and "would remove team/tool build 1" in out and "build 2" not in out
    assert prefixes[1].is_dir()

    code, out, _ = p.cli("gc", "--keep", "0")
    assert code == 0 and "removed 2 prefix(es)" in out
    assert not prefixes[1].exists() and not prefixes[2].exists()
    assert prefixes[3].is_dir() and _run_tool(p.link("team/tool")).startswith("tool 2.0")
    for b in builds:  # lockfiles and logs are never collected
        assert all((p.store / loc).is_file() for loc in b["artifacts"].values())
    code, _, err = p.cli("rollback", "team/tool", "1")
    assert code == 2 and "garbage-collected" in err
    assert "removed 0 prefix(es)" in p.cli("gc", "--keep", "0")[1]


def test_plan_formats_and_exit_codes(project, tool_channel):
    p = project({ALIAS + "testchan": tool_channel})
    p.write_env("team/tool.yaml", tool_env("tool=1.0"))
    p.write_env("data/tool.yml", tool_env("tool=2.0"))
    code, out, _ = p.cli("plan", "--format", "json")
    assert code == 1
    actions = {a["environment"]: a for a in json.loads(out)["actions"]}
    assert {k: (a["action"], a["reason"]) for k, a in actions.items()} == {
        "data/tool": ("build", "NewEnvironment"),
        "team/tool": ("build", "NewEnvironment"),
    }
    code, out, _ = p.cli("plan", "--format", "markdown")
    assert code == 1 and "| `team/tool` | build | NewEnvironment |" in out
    assert p.cli("reconcile", "--once")[0] == 0
    code, out, _ = p.cli("plan")
    assert (code, out.strip()) == (0, "0 to change, 2 unchanged.")


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"build": {"concurrency": 0}}, "build.concurrency"),
        ({"bogus": 1}, "bogus"),
        ({"web": {"listen": "nowhere"}}, "web.listen"),
    ],
    ids=["bad-value", "unknown-key", "bad-listen"],
)
def test_bad_configuration_exits_2_naming_the_key(project, tool_channel, config, expected):
    p = project({ALIAS + "testchan": tool_channel})
    p.write_config(**config)
    code, _, err = p.cli("plan")
    assert code == 2
    assert expected in err and str(p.config_file) in err


def _run_tool(link: Path) -> str:
    return subprocess.run([link / "bin/tool"], capture_output=True, text=True, check=True).stdout.strip()


def test_pip_dependencies_are_locked_and_installed_with_uv(project, tmp_path_factory, http_channel):
    from tests.support.channels import make_channel
    from tests.support.hostpython import host_python_runs_when_copied, write_host_python
    from tests.support.pypi import serve_directory, write_simple_index, write_wheel

    reason = host_python_runs_when_copied()
    if reason:
        pytest.skip(reason)
    conda = tmp_path_factory.mktemp("pychan")
    write_host_python(conda)
    make_channel(conda, [])
    wheels = tmp_path_factory.mktemp("wheels")
    built = [write_wheel(wheels, "greeting", "1.2", requires=["wordlist>=2"]), write_wheel(wheels, "wordlist", "2.0")]
    index = write_simple_index(tmp_path_factory.mktemp("index"), built)
    with serve_directory(index.parent) as url:
        p = project({ALIAS + "testchan": http_channel(conda)}, pip={"index_url": f"{url}/simple"})
        p.write_env("py/app.yaml", "channels: [testchan]\ndependencies:\n  - python 3.*\n  - pip:\n    - greeting\n")
        code, _, err = p.cli("reconcile", "--once", "--wait")
        assert code == 0, err
    out = subprocess.run(
        [
            p.link("py/app") / "bin/python",
            "-c",
            "import greeting, wordlist, sys; print(greeting.VERSION, wordlist.VERSION, sys.prefix)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[:2] == ["1.2", "2.0"]
    assert out[2] == str(p.link("py/app"))  # the interpreter runs in the linked environment
    item = p.status()["py/app"]
    lock = yaml.safe_load(Path(item["artifacts"]["conda-lock"]).read_text())
    pip_pkgs = {pkg["name"]: pkg for pkg in lock["package"] if pkg["manager"] == "pip"}
    assert set(pip_pkgs) == {"greeting", "wordlist"}
    assert pip_pkgs["greeting"]["hash"]["sha256"]
    pinned = yaml.safe_load(Path(item["artifacts"]["environment"]).read_text())
    assert {"pip": ["greeting==1.2", "wordlist==2.0"]} in pinned["dependencies"]
