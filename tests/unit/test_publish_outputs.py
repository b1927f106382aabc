"""``run_outputs``: order, failures as problem lines, attachments handed on."""

from __future__ import annotations

import errno
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condaops.config import Settings
from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.publish.outputs import Attachment, OutputContext, OutputResult, run_outputs


@dataclass
class Fake:
    kind: str
    on: bool = True
    fail: bool = False
    seen: list[str] | None = None

    def wanted(self, settings: Settings) -> bool:
        return self.on

    def run(self, ctx: OutputContext) -> OutputResult:
        if self.seen is not None:
            self.seen.extend(a.artifact_type for a in ctx.attachments)
        if self.fail:
            raise CondaopsError(f"{self.kind} broke", reason="FakeFailed")
        path = Path(f"/out/{self.kind}")
        return OutputResult(files=[(self.kind, path)], attachments=[Attachment(f"type/{self.kind}", (path,))])


def context() -> OutputContext:
    req: Any = None  # the fakes never look at the request
    return OutputContext(req, Settings(), lambda make: None, lambda: [], logging.getLogger("test"))


def test_outputs_run_in_order_and_see_earlier_attachments() -> None:
    seen: list[str] = []
    published = run_outputs([Fake("a"), Fake("off", on=False), Fake("b"), Fake("c", seen=seen)], context())
    assert [kind for kind, _ in published.files] == ["a", "b", "c"]
    assert seen == ["type/a", "type/b"]  # the switched-off output offered nothing
    assert published.problems == []


def test_a_failing_output_is_a_problem_line_and_the_next_one_still_runs() -> None:
    published = run_outputs([Fake("a", fail=True), Fake("b")], context())
    assert published.problems == ["FakeFailed: a broke"]
    assert [kind for kind, _ in published.files] == ["b"]


@dataclass
class Later:
    """Leaves its writing to the background (as the tarball does)."""

    kind: str
    gate: threading.Event
    fail: bool = False

    def wanted(self, settings: Settings) -> bool:
        return True

    def run(self, ctx: OutputContext) -> OutputResult:
        path = Path(f"/out/{self.kind}")

        def write() -> None:
            assert self.gate.wait(10)
            if self.fail:
                raise CondaopsError(f"{self.kind} broke late", reason="FakeFailed")

        return OutputResult(
            files=[(self.kind, path)],
            attachments=[Attachment(f"type/{self.kind}", (path,))],
            pending=ctx.background(write),
        )


@dataclass
class Opener:
    """Runs while the background work waits, then reads the attachments (which waits)."""

    gate: threading.Event
    seen: list[str]

    kind: str = "image"

    def wanted(self, settings: Settings) -> bool:
        return True

    def run(self, ctx: OutputContext) -> OutputResult:
        self.seen.append("ran before the background work finished")
        self.gate.set()
        self.seen.extend(a.artifact_type for a in ctx.attachments)
        return OutputResult()


def test_background_work_overlaps_the_next_output_and_is_waited_for() -> None:
    gate, seen = threading.Event(), []
    published = run_outputs([Later("pack", gate), Opener(gate, seen)], context())
    assert seen == ["ran before the background work finished", "type/pack"]
    assert [kind for kind, _ in published.files] == ["pack"] and published.problems == []


def test_failed_background_work_is_a_problem_and_offers_nothing() -> None:
    gate, seen = threading.Event(), []
    published = run_outputs([Later("pack", gate, fail=True), Opener(gate, seen)], context())
    assert seen == ["ran before the background work finished"]  # no attachment of a failed output
    assert published.files == [] and published.problems == ["FakeFailed: pack broke late"]


def test_an_output_that_ran_out_of_space_says_disk_full() -> None:
    class Full:
        kind = "full"

        def wanted(self, settings: Settings) -> bool:
            return True

        def run(self, ctx: OutputContext) -> OutputResult:
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError as exc:
                raise CondaopsError("writing the tarball failed", reason="PackFailed") from exc

    published = run_outputs([Full(), Fake("b")], context())
    assert published.problems == ["DiskFull: writing the tarball failed"]
