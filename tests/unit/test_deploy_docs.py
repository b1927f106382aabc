"""The deployment docs stay true to the code: every Kubernetes manifest parses and hangs
together, every command they run is one the CLI accepts, every example configuration
loads, and the systemd unit passes ``systemd-analyze verify`` (when that tool exists).

Commands are checked with the real parser (``build_parser``); a command the docs name
before the CLI has it (``worker``, ``migrate``, ``serve --role``) skips with the reason
instead of failing, so the docs can lead the code by a commit.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from condaops.config import load_settings
from condaops.reconciler.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
K8S = DEPLOY / "k8s"
GUIDES = (ROOT / "docs" / "deployment.md", ROOT / "docs" / "operations.md")
CONFIG_MARKER = "# condaops.yaml"  # first line of a fenced ```yaml block that is a condaops config
EXECUTABLE = "/opt/condaops/bin/condaops"  # where the unit and the docs install condaops

EXPECTED_KINDS = {
    "namespace.yaml": [("v1", "Namespace")],
    "configmap.yaml": [("v1", "ConfigMap")],
    "secret.example.yaml": [("v1", "Secret")],
    "pvc.yaml": [("v1", "PersistentVolumeClaim")],
    "web.yaml": [("apps/v1", "Deployment"), ("v1", "Service")],
    "reconciler.yaml": [("apps/v1", "Deployment")],
    "worker.yaml": [("apps/v1", "Deployment")],
    "migrate-job.yaml": [("batch/v1", "Job")],
    "ingress.yaml": [("networking.k8s.io/v1", "Ingress")],
    "kustomization.yaml": [("kustomize.config.k8s.io/v1beta1", "Kustomization")],
}


# --- helpers ----------------------------------------------------------------------------


def _manifests() -> dict[str, list[dict[str, Any]]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d] for p in sorted(K8S.glob("*.yaml"))}


def _objects(kind: str) -> list[dict[str, Any]]:
    return [d for docs in _manifests().values() for d in docs if d.get("kind") == kind]


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """(object name, pod spec) of every Deployment and Job."""
    return [(o["metadata"]["name"], o["spec"]["template"]["spec"]) for o in _objects("Deployment") + _objects("Job")]


def _containers() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{name}/{c['name']}", c) for name, spec in _pod_specs() for c in spec["containers"]]


def _deployment(component: str) -> dict[str, Any]:
    (found,) = [
        d for d in _objects("Deployment") if d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return found


def check_command(args: list[str]) -> None:
    """``args`` (after the executable) parse."""
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"condaops rejects the documented command {shlex.join(args)!r} (exit {exc.code})")


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of each fenced block."""
    return [(m[1].strip(), m[2]) for m in re.finditer(r"^```([^\n]*)\n(.*?)^```", text, re.S | re.M)]


def _guide_commands() -> list[tuple[str, list[str]]]:
    """Every ``condaops ...`` line of the guides' shell blocks and every ``ExecStart=`` line."""
    found: list[tuple[str, list[str]]] = []
    for guide in GUIDES:
        for info, body in _fenced_blocks(guide.read_text()):
            for line in body.splitlines():
                line = line.split(" #", 1)[0].strip().removeprefix("$ ")
                line = re.sub(r"^(sudo -u condaops |podman run --rm \S+ )", "", line)
                if info in ("sh", "console") and line.startswith("condaops "):
                    found.append((f"{guide.name}: {line}", shlex.split(line)[1:]))
                elif line.startswith(f"ExecStart={EXECUTABLE} "):
                    found.append((f"{guide.name}: {line}", shlex.split(line)[1:]))
    return found


def _example_configs() -> list[tuple[str, str, dict[str, str]]]:
    """(where, YAML text, extra environment) of every condaops configuration in the docs."""
    configs = [("container-condaops.yaml", (DEPLOY / "container-condaops.yaml").read_text(), {})]
    (configmap,) = _objects("ConfigMap")
    secrets = {k: v for s in _objects("Secret") for k, v in s["stringData"].items() if k.startswith("CONDAOPS_")}
    for where, container in _containers():  # the ConfigMap as each container sees it
        env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        configs.append((f"configmap.yaml as seen by {where}", configmap["data"]["condaops.yaml"], {**secrets, **env}))
    for guide in GUIDES:
        for info, body in _fenced_blocks(guide.read_text()):
            if info == "yaml" and body.startswith(CONFIG_MARKER):
                configs.append((f"{guide.name}: {body.splitlines()[0]}", body, {}))
    return configs


# --- Kubernetes manifests -----------------------------------------------------------------


def test_every_manifest_is_expected():
    assert sorted(_manifests()) == sorted(EXPECTED_KINDS)


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS), ids=str)
def test_manifest_kinds(name):
    docs = _manifests()[name]
    assert [(d.get("apiVersion"), d.get("kind")) for d in docs] == EXPECTED_KINDS[name]
    for d in docs:
        if d["kind"] not in ("Namespace", "Kustomization"):
            assert d["metadata"]["namespace"] == "condaops", f"{name}: {d['kind']} outside the namespace"


@pytest.mark.parametrize(("where", "container"), _containers(), ids=[w for w, _ in _containers()])
def test_container_runs_a_real_command(where, container):
    assert "command" not in container, f"{where}: keep the image's entrypoint (tini + condaops)"
    check_command(container["args"])


def test_pods_refer_only_to_what_exists():
    names = {
        kind: {o["metadata"]["name"] for o in _objects(kind)}
        for kind in ("ConfigMap", "Secret", "PersistentVolumeClaim")
    }
    images = set()
    for where, spec in _pod_specs():
        volumes = {v["name"]: v for v in spec["volumes"]}
        for v in volumes.values():
            if "configMap" in v:
                assert v["configMap"]["name"] in names["ConfigMap"], where
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in names["PersistentVolumeClaim"], where
        for c in spec["containers"]:
            images.add(c["image"])
            assert {m["name"] for m in c["volumeMounts"]} <= set(volumes), where
            assert {e["secretRef"]["name"] for e in c.get("envFrom", [])} <= names["Secret"], where
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
    assert len(images) == 1, f"every role runs the same image: {images}"


def test_kustomization_lists_files_that_exist():
    (kust,) = _manifests()["kustomization.yaml"]
    assert all((K8S / r).is_file() for r in kust["resources"])
    assert "secret.example.yaml" not in kust["resources"], "placeholder secrets must never be applied"


def test_roles_are_deployed_as_designed():
    web, reconciler, worker = (_deployment(c) for c in ("web", "reconciler", "worker"))
    assert web["spec"]["replicas"] == 2
    (c,) = web["spec"]["template"]["spec"]["containers"]
    assert (c["readinessProbe"]["httpGet"]["path"], c["livenessProbe"]["httpGet"]["path"]) == ("/readyz", "/healthz")
    assert reconciler["spec"]["replicas"] == 1 and reconciler["spec"]["strategy"]["type"] == "Recreate"
    (configmap,) = _objects("ConfigMap")
    timeout = yaml.safe_load(configmap["data"]["condaops.yaml"])["build"]["timeout"]
    assert timeout == "1h", "the grace period below is computed for a 1 h build timeout"
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 3600


def test_probe_paths_are_served():
    from condaops.web.ops import healthz, readyz

    assert set(healthz.paths) | set(readyz.paths) == {"/healthz", "/readyz"}


def test_service_and_ingress_reach_the_web_pods():
    (service,) = _objects("Service")
    (ingress,) = _objects("Ingress")
    assert service["spec"]["selector"].items() <= _deployment("web")["spec"]["template"]["metadata"]["labels"].items()
    backends = [p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
    assert backends == [service["metadata"]["name"]]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "0", "registry pushes are large"
    assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"


# --- commands and configurations in the guides ---------------------------------------------


def test_guides_name_commands():
    assert len(_guide_commands()) >= 10


@pytest.mark.parametrize(("where", "args"), _guide_commands(), ids=[w for w, _ in _guide_commands()])
def test_guide_command_parses(where, args):
    check_command(args)


def test_example_configs_are_found():
    assert len([c for c in _example_configs() if c[0].startswith("deployment.md")]) >= 4


@pytest.mark.parametrize(("where", "text", "environ"), _example_configs(), ids=[c[0] for c in _example_configs()])
def test_example_config_loads(where, text, environ, tmp_path):
    config = tmp_path / "condaops.yaml"
    config.write_text(text)
    settings = load_settings(config, environ=environ, cwd=tmp_path)
    assert settings.store.is_absolute(), f"{where}: give the store as an absolute path"


# --- files for one host and for the image ---------------------------------------------------


def _unit_for_this_host(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's condaops (verify checks it exists)."""
    here = Path(sys.executable).parent / "condaops"
    if not here.exists():
        pytest.skip("no condaops script next to the test interpreter to stand in for /opt/condaops")
    unit = tmp_path / "condaops.service"
    unit.write_text((DEPLOY / "condaops.service").read_text().replace(EXECUTABLE, str(here)))
    return unit


def test_unit_runs_a_real_command():
    (line,) = [ln for ln in (DEPLOY / "condaops.service").read_text().splitlines() if ln.startswith("ExecStart=")]
    assert line.startswith(f"ExecStart={EXECUTABLE} ")
    check_command(shlex.split(line)[1:])


def test_unit_passes_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (package systemd); the unit was not verified")
    unit = _unit_for_this_host(tmp_path)
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys, with a warning: any output is a finding.
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


def test_containerfile_copies_what_exists():
    text = (DEPLOY / "Containerfile").read_text()
    sources = [
        p
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for p in line.split()[1:-1]
        if not p.startswith("--")
    ]
    assert sources, "no COPY lines found"
    assert all((ROOT / p).exists() for p in sources), sources
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "condaops"]' in text
    assert re.search(r"^USER 10001", text, re.M), "the image runs as a non-root user"
