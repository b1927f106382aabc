"""``run_outputs``: order, failures as problem lines, attachments handed on."""

from __future__ import annotations

import logging
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
