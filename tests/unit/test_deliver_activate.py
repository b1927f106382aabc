"""Activation hooks of a build, captured once with bash (``deliver.activate``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from condaops.reconciler.deliver.activate import capture

SCRIPT = """
export JAVA_HOME="$CONDA_PREFIX/lib/jvm"
export PATH="$CONDA_PREFIX/lib/jvm/bin:$PATH:/appended"
export FROM_FILE_SEEN="$TOOL_MODE"
greet() { echo hi; }
export -f greet
export GREETING=script
"""


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    (tmp_path / "etc/conda/activate.d").mkdir(parents=True)
    (tmp_path / "etc/conda/env_vars.d").mkdir(parents=True)
    (tmp_path / "etc/conda/activate.d/java.sh").write_text(SCRIPT)
    (tmp_path / "etc/conda/activate.d/zz-exits.sh").write_text("export LOST=1\nexit 1\n")
    (tmp_path / "etc/conda/env_vars.d/tool.json").write_text('{"TOOL_MODE": "fast", "OWNED": "file", "N": 3}')
    return tmp_path


def test_what_activation_adds_is_captured_once_per_build(prefix: Path) -> None:
    spec = (("OWNED", "spec"), ("PLAIN", "x"))
    got = capture(1, str(prefix), spec, "ds-tools")
    assert dict(got.variables) == {
        "TOOL_MODE": "fast",  # env_vars.d (string values only)
        "JAVA_HOME": f"{prefix}/lib/jvm",
        "FROM_FILE_SEEN": "fast",  # scripts see the env_vars.d values
        "GREETING": "script",
    }  # OWNED: the spec's value wins over the file's; no exported function, no PATH, nothing from a failed script
    assert got.path == (f"{prefix}/lib/jvm/bin",)  # what it put first; /appended is not carried
    assert got.skipped == ("etc/conda/activate.d/zz-exits.sh",)
    assert capture(1, str(prefix), spec, "ds-tools") is got  # cached: the scripts ran once


def test_a_prefix_without_hooks_runs_nothing(tmp_path: Path) -> None:
    got = capture(2, str(tmp_path), (), "ds-tools")
    assert (got.variables, got.path, got.skipped) == ((), (), ())
