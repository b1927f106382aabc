"""One SQLite store, one writer: while `condaops serve` runs, another serve, a reconcile,
gc or rollback on the same store refuse at once, naming the running process and what to
do; reading commands work; a killed holder leaves nothing locked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from condaops.reconciler.state.writer import StoreBusyError, WriterLock
from tests.integration.conftest import ALIAS
from tests.integration.test_serve import free_port, wait_until

pytestmark = pytest.mark.integration


def serve(p) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(p.config_file), "serve"],
        stderr=subprocess.PIPE,
        text=True,
    )


def healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        return bool(json.load(answer)["status"] == "ok")


def test_a_second_writer_is_refused_and_named(project, tool_channel) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    p = project({ALIAS + "testchan": tool_channel}, web={"listen": f"127.0.0.1:{port}"})
    p.write_env("team/tool.yaml", "channels: [testchan]\ndependencies: [tool=1.0]\n")
    running = serve(p)
    try:
        wait_until(lambda: healthy(port))
        for args, advice in [
            (("reconcile", "--once", "--wait"), "condaops status"),
            (("gc",), "stop it first"),
            (("rollback", "team/tool", "1"), "stop it first"),
        ]:
            code, _, err = p.cli(*args)
            assert code == 2, (args, err)
            assert "another condaops process writes to this store" in err
            assert f"`condaops serve` (pid {running.pid} on " in err and advice in err
        second = subprocess.run(
            [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(p.config_file), "serve"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2 and f"(pid {running.pid} on " in second.stderr
        assert p.cli("status")[0] == 0  # reading needs no lock
        assert running.poll() is None  # the service runs on
    finally:
        running.send_signal(signal.SIGKILL)  # even killed, it leaves nothing locked
        running.communicate(timeout=30)
    code, _, err = p.cli("reconcile", "--once", "--wait")
    assert code == 0, err


def test_the_lock_is_per_store_and_released(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = WriterLock(tmp_path / "a.db.lock", "serve")
    first.acquire()
    with pytest.raises(StoreBusyError, match=rf"`condaops serve` \(pid {os.getpid()} on "):
        WriterLock(tmp_path / "a.db.lock", "gc").acquire()
    other = WriterLock(tmp_path / "b.db.lock", "gc")
    other.acquire()  # another store: its own lock
    other.release()
    first.release()
    again = WriterLock(tmp_path / "a.db.lock", "gc")
    again.acquire()
    again.release()
