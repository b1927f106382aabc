"""Browser tests: headless Chromium (Debian's ``chromium``) driven by Playwright for Python
against a real ``condaops serve`` process on 127.0.0.1.

Without Chromium or Playwright the tests are skipped with the reason, except on CI
(``CI=true``), where they fail. Each site is its own ``condaops serve`` process that is
stopped when the test ends (and, on Linux, when the test process dies).
"""

from __future__ import annotations

import contextlib
import ctypes
import http.server
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.channels import PackageSpec, make_channel
from tests.support.ci import skip_or_fail

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PACKAGES = [
    PackageSpec("openssl", "3.3.1", files={"lib/libssl.txt": "3.3.1\n"}),
    PackageSpec("zlib", "1.3", fmt="conda", files={"lib/libz.txt": "1.3\n"}),
    PackageSpec("app", "1.0", depends=("openssl >=3.3",), executables=("app",)),
    PackageSpec("app", "2.0", depends=("openssl >=3.3", "zlib"), executables=("app",)),
]


def _unavailable(reason: str) -> None:
    skip_or_fail(reason)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright ``Browser``).

    Module-scoped: Playwright's sync API keeps an event loop running in this thread, and
    tests elsewhere start their own loops (``anyio.run``) once it is gone."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        _unavailable("Chromium not found (Debian: apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


# --- a channel whose package downloads can be held back ---------------------------------


class GatedChannel:
    """A channel served on 127.0.0.1; package downloads wait while ``gate`` is closed
    (so a build stays in its install step until the test lets it go)."""

    def __init__(self, root: Path) -> None:
        self.gate = threading.Event()
        gate = self.gate

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                if self.path.endswith((".tar.bz2", ".conda")):
                    gate.wait(60)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


# --- condaops serve -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if the test process dies first."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Site:
    root: Path
    channel: GatedChannel
    base: str
    process: subprocess.Popen[bytes] | None = None
    sources: list[dict[str, Any]] | None = None  # default: the envs/ folder as a directory source
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "serve.log"

    @property
    def envs(self) -> Path:
        return self.root / "envs"

    def write_env(self, rel: str, *deps: str) -> None:
        path = self.envs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"channels:\n  - {self.channel.url}\ndependencies:\n" + "".join(f"  - {d}\n" for d in deps))

    def start(self) -> None:
        port = int(self.base.rsplit(":", 1)[1])
        config = {
            "store": "store",
            "sources": self.sources or [{"directory": "envs", "interval": "2s"}],
            "platforms": ["linux-64"],
            "build": {"retries": 0, "concurrency": 2},
            "web": {"listen": f"127.0.0.1:{port}"},
        }
        (self.root / "condaops.yaml").write_text(yaml.safe_dump(config))
        command = [
            sys.executable,
            "-c",
            "import sys; from condaops.reconciler.cli import main; sys.exit(main())",
            "--config",
            str(self.root / "condaops.yaml"),
            "serve",
        ]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=self.root, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )
        self.wait_for(lambda: httpx.get(self.base + "/healthz", timeout=1).status_code == 200, "the server to start")

    def stop(self) -> None:
        self.channel.gate.set()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def get(self, path: str) -> Any:
        return httpx.get(self.base + path, timeout=5).json()

    def wait_for(self, check: Callable[[], object], what: str, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"condaops serve exited ({self.process.returncode}):\n{self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                result = check()
                if result:
                    return result
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; server log:\n{self.log.read_text()[-4000:]}")

    def states(self) -> dict[str, str]:
        return {f"{i['namespace']}/{i['name']}": i["state"] for i in self.get("/api/v1/status")}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A project folder with a gated channel (open unless the test closes it first)."""
    channel = GatedChannel(make_channel(tmp_path / "channel", PACKAGES))
    s = Site(tmp_path, channel, f"http://127.0.0.1:{_free_port()}")
    try:
        yield s
    finally:
        s.stop()
        channel.close()
