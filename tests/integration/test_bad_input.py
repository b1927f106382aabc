"""Bad input never stops the pipeline: each bad file or build fails with a reason and a
one-line message naming the file, and the other environments are unaffected."""

from __future__ import annotations

import http.server
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.integration.conftest import ALIAS
from tests.support.channels import closed_port_url
from tests.support.loopback import serve_http


def env(deps: str, channels: str = "[testchan]") -> str:
    return f"channels: {channels}\ndependencies: {deps}\n"


BAD_FILES = {
    # path: (content, expected reason, words the message must contain)
    "bad/yaml.yaml": ("channels: [testchan\ndependencies: [tool]\n", "SpecYamlInvalid", "bad/yaml.yaml:"),
    "bad/latin1.yaml": (b"dependencies: [caf\xe9]\n", "SpecNotUtf8", "bad/latin1.yaml"),
    "bad/huge.yaml": ("# x\n" * 300_000, "SpecTooLarge", "bad/huge.yaml"),
    "bad/unknownkey.yaml": ("dependencies: [tool]\nfrobnicate: 1\n", "SpecUnknownKey", "frobnicate"),
    "bad/unsatisfiable.yaml": (env("[tool >=99]"), "SolveFailed", "tool"),
    "bad/unknownpkg.yaml": (env("[no-such-package]"), "SolveFailed", "no-such-package"),
    "bad/disallowed.yaml": (env("[tool]", "[elsewhere]"), "ChannelNotAllowed", "elsewhere"),
    "bad/dup.yaml": (env("[tool]"), "DuplicateEnvironment", "bad/dup/environment.yaml"),
    "bad/dup/environment.yaml": (env("[tool=2.0]"), "DuplicateEnvironment", "bad/dup.yaml"),
}


def test_each_bad_input_is_reported_and_the_rest_builds(project, tool_channel):
    p = project({ALIAS + "testchan": tool_channel}, channels={"allowed": ["testchan"]}, build={"retries": 0})
    p.write_env("good/tool.yaml", env("[tool=1.0]"))
    for path, (content, _, _) in BAD_FILES.items():
        p.write_env(path, content)
    p.write_env("bad/a..b.yaml", env("[tool]"))
    p.write_env("bad/.#tool.yaml", "half-written editor lock file: {")  # ignored, never built

    code, _, err = p.cli("reconcile", "--once", "--wait")
    assert code == 1  # some environments failed
    status = p.status()
    assert status["good/tool"]["state"] == "ready"
    for path, (_, reason, words) in BAD_FILES.items():
        ref = "bad/" + path.split("/")[1].split(".")[0]
        item = status[ref]
        assert (item["state"], item["reason"]) == ("failed", reason), (path, item)
        assert words in item["message"] and "\n" not in item["message"].strip()[:200]
        assert item["build_id"] is None and not p.link(ref).exists()
    assert "bad/a..b" not in status  # no environment of that name, but the file is reported:
    code, out, _ = p.cli("status", "--json")
    (named,) = [i for i in json.loads(out) if i["path"] == "bad/a..b.yaml"]
    assert (named["namespace"], named["state"], named["reason"]) == (None, "failed", "NameInvalid")
    code, out, _ = p.cli("plan")
    assert "NameInvalid" in out and "bad/a..b.yaml" in out
    assert not any(".#tool" in k for k in status)


def test_unreachable_channel_is_retried_with_backoff_then_fails(project, tool_channel):
    p = project(
        {ALIAS + "testchan": tool_channel, ALIAS + "gone": closed_port_url()}, build={"retries": 2, "backoff": "0.2s"}
    )
    p.write_env("team/gone.yaml", env("[tool]", "[gone]"))
    p.write_env("team/tool.yaml", env("[tool]"))
    started = time.monotonic()
    code, _, err = p.cli("reconcile", "--once", "--wait")
    assert code == 1 and "failed: team/gone" in err
    item = p.status()["team/gone"]
    assert (item["state"], item["reason"]) == ("failed", "ChannelUnreachable")
    assert "gone" in item["message"]
    history = [h.split() for h in p.cli("history", "team/gone")[1].splitlines()]
    assert history[0][:3] == ["BUILD", "STATE", "ATTEMPT"]
    assert [(h[1], h[2]) for h in history[1:]] == [("failed", "3"), ("failed", "2"), ("failed", "1")]
    assert time.monotonic() - started >= 0.2 + 0.4  # backoff 0.2 s, then 0.4 s
    assert p.status()["team/tool"]["state"] == "ready"


@contextmanager
def slow_server(delay: float) -> Iterator[str]:
    """An HTTP server that answers nothing for ``delay`` seconds (a hung channel)."""

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            time.sleep(delay)
            self.send_error(503)

        def log_message(self, *args: object) -> None:
            pass

    with serve_http(Slow, name="hung-channel") as url:
        yield url


def test_build_timeout_is_enforced_mid_step(project, tool_channel):
    with slow_server(30) as slow:
        p = project({ALIAS + "testchan": tool_channel, ALIAS + "slow": slow}, build={"retries": 0, "timeout": "2s"})
        p.write_env("team/slow.yaml", env("[tool]", "[slow]"))
        started = time.monotonic()
        code, _, _ = p.cli("reconcile", "--once", "--wait")
        took = time.monotonic() - started
    assert code == 1
    item = p.status()["team/slow"]
    assert (item["state"], item["reason"]) == ("failed", "BuildTimeout")
    assert took < 15, f"the 2 s timeout took {took:.1f} s to act"
    assert not p.link("team/slow").exists()
    assert not list((p.store / "team").glob("*-slow"))  # no half prefix left behind


@pytest.mark.parametrize("signal_name", ["SIGKILL"])
def test_a_killed_build_is_rerun_at_the_next_start(project, tool_channel, signal_name):
    import os
    import signal
    import subprocess
    import sys

    with slow_server(60) as slow:
        p = project({ALIAS + "testchan": tool_channel, ALIAS + "slow": slow})
        p.write_env("team/tool.yaml", env("[tool]", "[slow]"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(p.config_file), "reconcile", "--once"],
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            code, out, _ = p.cli("status", "--json")
            if '"building"' in out:
                break
            time.sleep(0.2)
        else:
            proc.kill()
            pytest.fail("the build never started")
        half = p.store / "team" / f"{p.status()['team/tool']['spec_hash']}-tool"
        half.mkdir(parents=True)  # what a crash mid-install leaves behind
        (half / "partial").write_text("x")
        os.kill(proc.pid, getattr(signal, signal_name))
        proc.wait(timeout=10)
    assert p.status()["team/tool"]["state"] == "building"  # as the crash left it

    p.write_env("team/tool.yaml", env("[tool]", "[slow]"))
    p.write_config(channels={**p.config["channels"], "mirrors": {ALIAS + "slow": [str(tool_channel)]}})
    code, _, err = p.cli("reconcile", "--once", "--wait")
    assert code == 0, err
    item = p.status()["team/tool"]
    assert (item["state"], item["build_id"]) == ("ready", 1)
    assert not (half / "partial").exists()
    history = p.cli("history", "team/tool")[1]
    assert history.splitlines()[1].split()[:3] == ["1", "completed", "1"]  # build, state, attempt
