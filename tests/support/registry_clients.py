"""Real registry clients and servers for tests and benchmarks, all on 127.0.0.1.

* ``registry_servers(tmp_path_factory)`` — serve the registry app with uvicorn in threads
  (``serve_asgi`` runs any ASGI app); ``registry_process(store)`` — the registry as its own
  process, configured by ``CONDAOPS_*`` variables, with CPU and peak-memory readings;
* ``docker_registry(folder)`` — Debian's ``docker-registry`` (distribution 2.8) as a process;
* ``moto_s3()`` + ``fake_aws_credentials()`` — an S3 API (moto's server mode);
* ``write_oci_layout(folder)`` — a tiny image (one gzip layer, config, manifest) as an OCI
  layout that skopeo can copy from;
* ``skopeo(...)``, ``podman_client(folder)``, ``oras_client(host)`` — the clients, isolated
  from the host's configuration (own storage, registries.conf, containers.conf; oras never
  logs in, so ~/.docker is untouched).

A missing tool skips the test with the package to install, or fails it when ``CI=true``.
Fixtures are left to the test modules, which build them from these context managers.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.ci import skip_or_fail

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
TOKEN = "test-push-token-0123456789"


def require_tool(name: str, package: str) -> str:
    """The tool's path; skip when missing (fail on CI, where it must be installed)."""
    path = shutil.which(name)
    if path:
        return path
    skip_or_fail(f"'{name}' is not installed (apt-get install -y {package})")


def require_module(name: str, package: str) -> Any:
    """Import an optional test dependency, skipping (failing on CI) without it."""
    try:
        return __import__(name)
    except ImportError:
        skip_or_fail(f"Python package '{package}' is not installed (pip install {package})")


def run(
    cmd: list[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 180,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure the assertion shows its output."""
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})}
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


# --- servers ------------------------------------------------------------------------------


@contextlib.contextmanager
def serve_asgi(app: Any, **config: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) until the block ends; yields
    ``127.0.0.1:PORT``."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float = 20) -> None:
    """Until ``url`` answers: 200, or 401 from a server that wants credentials."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass(frozen=True)
class ServerProcess:
    """A server running as its own process on ``host`` (``127.0.0.1:PORT``)."""

    host: str
    pid: int

    def peak_rss(self) -> int:
        """Peak resident memory in bytes (``VmHWM``)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far, including finished threads."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _process(
    cmd: list[str], host: str, log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Iterator[ServerProcess]:
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        wait_for_http(f"http://{host}/v2/")
        yield ServerProcess(host, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def docker_registry(folder: Path, *, htpasswd: str | None = None) -> Iterator[ServerProcess]:
    """Debian's docker-registry (distribution 2.8) on 127.0.0.1: open, or, given
    ``htpasswd`` lines, asking basic auth for everything."""
    binary = require_tool("docker-registry", "docker-registry")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    auth = ""
    if htpasswd is not None:
        (folder / "htpasswd").write_text(htpasswd)
        auth = f"auth: {{htpasswd: {{realm: condaops-test, path: {folder / 'htpasswd'}}}}}\n"
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n" + auth
    )
    with _process([binary, "serve", str(config)], f"127.0.0.1:{port}", folder / "registry.log") as server:
        yield server


@contextlib.contextmanager
def moto_s3(bucket: str = "registry") -> Iterator[str]:
    """An S3 API on 127.0.0.1 (moto's server mode) with ``bucket`` created; yields its URL.

    The caller sets AWS credentials in the environment (moto accepts any)."""
    require_module("boto3", "boto3")
    require_module("moto", "moto[server]")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        import boto3

        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=bucket)
        yield url
    finally:
        server.stop()


# --- an image to push ---------------------------------------------------------------------


@dataclass(frozen=True)
class OciImage:
    layout: Path  # the OCI layout folder
    tag: str
    manifest_digest: str
    config_digest: str
    layer_digest: str
    layer_size: int

    @property
    def oci_ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


def _tar_gz(files: Mapping[str, bytes]) -> tuple[bytes, str]:
    """A reproducible gzip tarball and the sha256 of the uncompressed tar (its diff id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), hashlib.sha256(tar_bytes).hexdigest()


def write_oci_layout(folder: Path, tag: str = "v1", files: Mapping[str, bytes] | None = None) -> OciImage:
    """A one-layer linux/amd64 image as an OCI image layout (``oci:<folder>:<tag>``)."""
    files = files or {"hello.txt": b"hello from condaops\n", "etc/condaops-test": b"1\n"}
    layer, diff_id = _tar_gz(files)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        }
    ).encode()
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        hex_digest = hashlib.sha256(data).hexdigest()
        (blobs / hex_digest).write_bytes(data)
        return f"sha256:{hex_digest}"

    layer_digest, config_digest = put(layer), put(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(layer)}],
        }
    ).encode()
    manifest_digest = put(manifest)
    (folder / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (folder / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": manifest_digest,
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": tag},
                    }
                ],
            }
        )
    )
    return OciImage(folder, tag, manifest_digest, config_digest, layer_digest, len(layer))


# --- clients ------------------------------------------------------------------------------


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``skopeo`` with the accept-anything policy, independent of /etc/containers."""
    binary = require_tool("skopeo", "skopeo")
    return run([binary, "--insecure-policy", *args], check=check)


@dataclass(frozen=True)
class Podman:
    """podman with its own storage (vfs), registries.conf and containers.conf.

    ``runroot`` must be short (podman refuses paths over 50 characters), so it lives
    directly in the system temp folder; ``close()`` removes it."""

    root: Path
    runroot: Path

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        binary = require_tool("podman", "podman")
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "containers.conf"
        conf.write_text(
            '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        )
        registries = self.root / "registries.conf"
        registries.write_text("unqualified-search-registries = []\n")
        env = {"CONTAINERS_CONF": str(conf), "CONTAINERS_REGISTRIES_CONF": str(registries)}
        storage = ["--root", str(self.root / "storage"), "--runroot", str(self.runroot), "--storage-driver", "vfs"]
        return run([binary, *storage, *args], env=env, check=check)

    def close(self) -> None:
        shutil.rmtree(self.runroot, ignore_errors=True)


@contextlib.contextmanager
def podman_client(folder: Path) -> Iterator[Podman]:
    """A ``Podman`` isolated from the host's images and configuration, removed afterwards."""
    require_tool("podman", "podman")
    client = Podman(folder, Path(tempfile.mkdtemp(prefix="pm-")))
    try:
        yield client
    finally:
        client.close()


def oras_client(host: str, token: str | None = TOKEN) -> Any:
    """An oras-py client for plain HTTP with basic auth (token as password), never login()."""
    require_module("oras", "oras")
    from oras.client import OrasClient

    client = OrasClient(hostname=host, insecure=True, auth_backend="basic")
    if token:
        client.auth.set_basic_auth("condaops", token)
    return client


# --- building blocks of fixtures ---------------------------------------------------------

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def fake_aws_credentials() -> Iterator[None]:
    """AWS variables for moto (which accepts any credentials), whatever the host has set."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        yield


@dataclass
class RunningRegistry:
    """The registry served on 127.0.0.1: ``host`` is ``127.0.0.1:PORT``."""

    host: str
    storage: Any
    settings: Any

    @property
    def url(self) -> str:
        return f"http://{self.host}"


@contextlib.contextmanager
def registry_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningRegistry]]:
    """Yields ``serve(storage=None, tokens=(TOKEN,)) -> RunningRegistry``; every registry it
    started (filesystem storage under a temporary store by default) stops at the end."""
    from condaops.config.settings import RegistrySettings, Settings
    from condaops.registry.app import create_registry_app
    from condaops.registry.backends import open_storage

    with contextlib.ExitStack() as stack:

        def serve(storage: Any = None, tokens: tuple[str, ...] = (TOKEN,)) -> RunningRegistry:
            store = tmp_path_factory.mktemp("registry-store")
            settings = Settings(store=store, registry=RegistrySettings(push_tokens=tokens))
            storage = storage or open_storage(settings)
            host = stack.enter_context(serve_asgi(create_registry_app(settings, storage)))
            return RunningRegistry(host, storage, settings)

        yield serve


def new_bucket(endpoint: str) -> str:
    """A new, empty bucket on the moto server."""
    import uuid

    import boto3

    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


_SERVE_SCRIPT = """
import json, sys, uvicorn
from condaops.config import load_settings
from condaops.registry.app import create_registry_app
uvicorn.run(create_registry_app(load_settings()), host="127.0.0.1", port=int(sys.argv[1]), log_level="error",
            **json.loads(sys.argv[2]))
"""


@contextlib.contextmanager
def registry_process(store: Path, token: str = TOKEN, **uvicorn_options: Any) -> Iterator[ServerProcess]:
    """The registry as its own process, configured the way a deployment is (``CONDAOPS_*``
    variables read by ``load_settings``): for memory measurements and benchmarks."""
    import sys

    port = free_port()
    store.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CONDAOPS_STORE": str(store), "CONDAOPS_REGISTRY__PUSH_TOKENS": token}
    env.pop("CONDAOPS_CONFIG", None)
    cmd = [sys.executable, "-c", _SERVE_SCRIPT, str(port), json.dumps(uvicorn_options)]
    with _process(cmd, f"127.0.0.1:{port}", store / "server.log", env, store) as server:
        yield server
