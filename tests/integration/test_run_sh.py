"""``bash environments.example/run.sh``, the README's first command, in a copy of the tree.

The copy gets the project's ``.venv`` and ``../shared/realdata`` as links, so the script
runs unmodified: it must name a taken port and use another, check the mirror before
starting, print the site's URL once it answers, build the example environments from the
real packages, and stop both processes on Ctrl-C. A mirror that serves nothing stops it
before condaops starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fixtures import require_realdata

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)


def _tree(tmp_path: Path, channels: Path) -> Path:
    """repo/environments.example (a copy), repo/.venv and shared/realdata/channel (links)."""
    repo = tmp_path / "repo"
    shutil.copytree(
        ROOT / "environments.example", repo / "environments.example", ignore=shutil.ignore_patterns(".condaops")
    )
    (repo / ".venv").symlink_to(VENV)
    (tmp_path / "shared" / "realdata").mkdir(parents=True)
    (tmp_path / "shared" / "realdata" / "channel").symlink_to(channels)
    return repo


def _taken_port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def _start(repo: Path, **ports: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDAOPS_")}
    env.update({k.upper(): str(v) for k, v in ports.items()})
    return subprocess.Popen(
        ["bash", "environments.example/run.sh"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # Ctrl-C goes to the whole group, as in a terminal
    )


def _lines(proc: subprocess.Popen[str]) -> Iterator[str]:
    assert proc.stdout is not None
    yield from proc.stdout


def _stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def _statuses(repo: Path) -> dict[str, str]:
    done = subprocess.run(
        [str(VENV / "bin" / "condaops"), "status", "--json", "--config", "environments.example/condaops.yaml"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return {}
    return {f"{i['namespace']}/{i['name']}": i["state"] for i in json.loads(done.stdout)}


def test_run_sh_names_taken_ports_waits_for_the_mirror_and_prints_the_site(tmp_path: Path) -> None:
    repo = _tree(tmp_path, require_realdata() / "channel")
    with _taken_port() as mirror_taken, _taken_port() as web_taken:
        mirror_port, web_port = mirror_taken.getsockname()[1], web_taken.getsockname()[1]
        proc = _start(repo, mirror_port=mirror_port, web_port=web_port)
        seen: list[str] = []
        try:
            url = None
            for line in _lines(proc):
                seen.append(line)
                found = re.search(r"run.sh: ready: the status site is at (\S+)", line)
                if found:
                    url = found.group(1)
                    break
            text = "".join(seen)
            assert url is not None, text
            assert f"port {mirror_port} for the channel mirror is taken" in text
            assert f"port {web_port} for the status site is taken" in text
            assert "channel mirror: http://127.0.0.1:" in text
            assert text.index("channel mirror: http") < text.index("starting condaops serve")
            with urllib.request.urlopen(url, timeout=10) as page:
                assert page.status == 200 and "condaops" in page.read().decode()
            deadline = time.monotonic() + 300  # the example environments build from the real packages
            expected = {"web/flask", "tools/crypto", "tools/compression", "shared/sqlite"}
            while time.monotonic() < deadline:
                states = _statuses(repo)
                if set(states) == expected and set(states.values()) == {"ready"}:
                    break
                time.sleep(2)
            assert set(states) == expected and set(states.values()) == {"ready"}, states
        finally:
            code = _stop(proc)
    assert code in (0, 130), "".join(seen)
    with pytest.raises(OSError):  # Ctrl-C stopped condaops: nothing answers on the site's port
        urllib.request.urlopen(url, timeout=5)


def test_run_sh_stops_before_condaops_when_the_mirror_serves_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty-channels"
    empty.mkdir()
    repo = _tree(tmp_path, empty)
    proc = _start(repo)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        _stop(proc)
    assert proc.returncode == 1, out
    assert "does not serve http://127.0.0.1:" in out and "HTTP 404" in out
    assert "starting condaops serve" not in out
