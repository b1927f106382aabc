"""``condaops serve`` as users run it: a subprocess that watches, builds, serves status,
survives bad input and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from tests.integration.conftest import ALIAS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_status(port: int) -> dict[str, dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=5) as resp:
        return {f"{i['namespace']}/{i['name']}": i for i in json.load(resp)}


def wait_until(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError as exc:  # the server is not up yet
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout} s (last error: {last})")


def test_serve_watches_builds_and_survives_bad_input(project, tool_channel):
    port = free_port()
    p = project({ALIAS + "testchan": tool_channel}, web={"listen": f"127.0.0.1:{port}"})
    p.write_env("team/tool.yaml", "channels: [testchan]\ndependencies: [tool=1.0]\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(p.config_file), "serve"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: get_status(port).get("team/tool", {}).get("state") == "ready")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert json.load(resp) == {"status": "ok"}

        # A broken file and a new good one arrive while it runs: the watcher sees both.
        p.write_env("team/broken.yaml", "dependencies: [tool\n")
        p.write_env("team/tool2.yaml", "channels: [testchan]\ndependencies: [tool=2.0]\n")
        wait_until(lambda: get_status(port).get("team/tool2", {}).get("state") == "ready", timeout=30)
        broken = get_status(port)["team/broken"]
        assert (broken["state"], broken["reason"]) == ("failed", "SpecYamlInvalid")
        assert "team/broken.yaml" in broken["message"]
        assert get_status(port)["team/tool"]["state"] == "ready"  # untouched

        # An edit to an existing file rebuilds and switches its link.
        first = p.link("team/tool").resolve()
        p.write_env("team/tool.yaml", "channels: [testchan]\ndependencies: [tool=2.0]\n")
        wait_until(lambda: p.link("team/tool").resolve() != first, timeout=30)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "condaops: stopped" in err


def test_serve_stops_with_a_clear_error_when_its_port_is_taken(project, tool_channel):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = project({ALIAS + "testchan": tool_channel}, web={"listen": f"127.0.0.1:{port}"})
        run = subprocess.run(
            [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(p.config_file), "serve"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 2, run.stderr
    assert f"key 'web.listen': the web server could not listen on 127.0.0.1:{port}" in run.stderr
