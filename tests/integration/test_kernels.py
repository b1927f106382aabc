"""A real Jupyter kernel from an environment condaops built, started with jupyter_client.

The environment holds the host interpreter packaged as a conda package
(tests/support/hostpython.py) and ``ipykernel`` through ``pip:``, resolved and installed by
uv from a PEP 503 index served on 127.0.0.1. The index holds real wheels: ipykernel and its
dependencies are downloaded once from the configured Python index with ``pip download``
for this interpreter and condaops' Linux target (manylinux2014: what uv's
``x86_64-unknown-linux-gnu`` accepts), into ``~/.cache/condaops-tests`` (``$XDG_CACHE_HOME``),
and reused by later runs; CI downloads them on its first run. Without them (no index
reachable) the test skips, or fails when ``CI=true``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ALIAS, Project
from tests.support.channels import PackageSpec, make_channel
from tests.support.ci import skip_or_fail
from tests.support.hostpython import host_python_runs_when_copied, write_host_python
from tests.support.pypi import serve_directory, write_simple_index
from tests.support.registry_clients import require_module

pytestmark = pytest.mark.integration

IPYKERNEL = "ipykernel>=6.20"
PY_TAG = f"{sys.version_info.major}.{sys.version_info.minor}"
CODE = (
    "import os, sys; print(os.path.realpath(sys.prefix)); "
    "print(os.environ['CONDA_PREFIX']); print(os.environ['GREETING']); print(os.environ['DATA_DIR'])"
)


def ipykernel_wheels() -> list[Path]:
    """ipykernel and its dependencies as wheels for this interpreter (downloaded once)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "condaops-tests" / f"ipykernel-{PY_TAG}"
    done = cache / ".complete"
    if not done.exists():
        cache.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", IPYKERNEL, "--only-binary=:all:", "-d", str(cache)]
        command += ["--platform", "manylinux2014_x86_64", "--python-version", PY_TAG, "--implementation", "cp"]
        got = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if got.returncode != 0:
            skip_or_fail(f"cannot download ipykernel wheels with pip: {got.stderr.strip()[-400:]}")
        done.write_text("")
    return sorted(cache.glob("*.whl"))


@pytest.fixture(scope="module")
def python_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A served simple index of ipykernel's wheels; yields its URL."""
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        pytest.skip("the ipykernel wheels are fetched for linux-64")
    index = write_simple_index(tmp_path_factory.mktemp("ipykernel-index"), ipykernel_wheels())
    with serve_directory(index.parent) as url:
        yield f"{url}/simple"


@pytest.fixture
def site(project, python_index: str, tmp_path_factory, http_channel, tmp_path: Path) -> Project:  # type: ignore[no-untyped-def]
    reason = host_python_runs_when_copied()
    if reason:
        pytest.skip(reason)
    conda = tmp_path_factory.mktemp("pychan")
    write_host_python(conda)
    hooks = PackageSpec(
        "datahooks", "1.0", files={"etc/conda/activate.d/data.sh": 'export DATA_DIR="$CONDA_PREFIX/share/data"\n'}
    )
    make_channel(conda, [hooks])
    return project(
        {ALIAS + "testchan": http_channel(conda)},
        pip={"index_url": python_index},
        publish={"enabled": False},
        kernels={"directory": str(tmp_path / "share" / "jupyter" / "kernels")},
    )


def env_file(greeting: str) -> str:
    return (
        "channels: [testchan]\ndependencies:\n  - python 3.*\n  - datahooks\n  - pip:\n"
        f"    - {IPYKERNEL}\nvariables:\n  GREETING: {greeting}\n"
    )


def run_in_kernel(kernel_dir: Path, name: str, code: str) -> list[str]:
    """Start kernel ``name`` as JupyterLab would, run ``code``, return its printed lines."""
    require_module("jupyter_client", "jupyter-client")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    manager.start_kernel()
    client = manager.client()
    printed: list[str] = []

    def collect(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])

    try:
        client.start_channels()
        client.wait_for_ready(timeout=120)
        reply = client.execute_interactive(code, timeout=60, output_hook=collect)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return "".join(printed).splitlines()


def test_a_real_kernel_runs_in_the_environment_and_follows_rebuilds(site: Project) -> None:
    kernel_dir = Path(site.config["kernels"]["directory"])
    site.write_env("ds/py.yaml", env_file("hello"))
    code, _, err = site.cli("reconcile", "--once", "--wait")
    assert code == 0, err
    item = site.status()["ds/py"]
    link = site.link("ds/py")

    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager(kernel_dirs=[str(kernel_dir)]).get_all_specs()
    assert list(specs) == ["condaops-ds-py"]
    spec = specs["condaops-ds-py"]["spec"]
    assert spec["display_name"] == "py (ds)" and spec["language"] == "python"
    assert spec["argv"][:3] == [f"{link}/bin/python", "-m", "ipykernel_launcher"]
    assert spec["metadata"]["condaops"]["build"] == item["build_id"]
    assert sorted(p.name for p in (kernel_dir / "condaops-ds-py").iterdir()) == [
        "kernel.json",
        "logo-32x32.png",
        "logo-64x64.png",
        "logo-svg.svg",
    ]
    assert ("kernel", "condaops-ds-py") in {(d["kind"], d["use"]) for d in item["deliveries"]}

    first = run_in_kernel(kernel_dir, "condaops-ds-py", CODE)
    assert first == [str((site.store / item["build_prefix"]).resolve()), str(link), "hello", f"{link}/share/data"]

    site.write_env("ds/py.yaml", env_file("again"))  # a new build: the next kernel start runs it
    code, _, err = site.cli("reconcile", "--once", "--wait")
    assert code == 0, err
    rebuilt = site.status()["ds/py"]
    assert rebuilt["build_id"] != item["build_id"]
    second = run_in_kernel(kernel_dir, "condaops-ds-py", CODE)
    assert second == [str((site.store / rebuilt["build_prefix"]).resolve()), str(link), "again", f"{link}/share/data"]
    written = json.loads((kernel_dir / "condaops-ds-py" / "kernel.json").read_text())
    assert written["metadata"]["condaops"]["build"] == rebuilt["build_id"]
