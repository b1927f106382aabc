"""The outputs of a build, behind one interface.

Publishing a linked build is a list of *outputs* run in order by ``run_outputs``: the
conda-pack tarball, the OCI image with its pushes, and whatever a site turns on next (an
SBOM, signatures, a squashfs image...). Each output is a small object with:

* ``kind`` — the artifact kind it records (``conda-pack``, ``image``...), also its name in
  logs and problems;
* ``wanted(settings)`` — whether the settings ask for it (pure);
* ``run(ctx)`` — write its files and return an ``OutputResult``: the files to record as the
  build's artifacts, the problems it met (one line each) and the *attachments* it offers:
  files that the image output pushes as OCI referrers of the image (artifact type +
  files), so an output that only writes a file never needs to know about registries.

An output is idempotent (the same build gives the same bytes), writes beside and renames
(a reader never sees half a file), and never fails the build: a ``CondaopsError`` it
raises becomes a problem line and the next output still runs. Outputs see the results of
the outputs before them in ``ctx.results`` (by kind), e.g. signatures need the digests the
image output pushed.

An output may leave its writing running while the next ones start (``ctx.background``,
returned as ``OutputResult.pending``): the tarball is written while the image's layers
are, each on its own core. ``ctx.attachments`` and ``ctx.settle()`` wait for that work,
so an output reading another's files calls one of them first; ``run_outputs`` settles
everything before it returns. Background work that raises a ``CondaopsError`` leaves a
problem line and no files or attachments.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from condaops.reconciler.build.disk import DISK_FULL, is_disk_full
from condaops.reconciler.errors import CondaopsError

if TYPE_CHECKING:
    from condaops.config.settings import Settings
    from condaops.reconciler.publish.build import PublishRequest
    from condaops.reconciler.publish.targets import Target

RunAsync = Callable[[Callable[[], Coroutine[Any, Any, None]]], None]


@dataclass(frozen=True, slots=True)
class Attachment:
    """Files an output asks to attach to the build's image as one OCI artifact (referrer)."""

    artifact_type: str
    files: tuple[Path, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class OutputResult:
    """What one output wrote (``(kind, path)`` pairs recorded as artifacts), the problems
    it met (one line each), the attachments it offers the image, and free-form ``data``
    for the outputs after it (e.g. the image output's pushes)."""

    files: list[tuple[str, Path]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    pending: Future[None] | None = None  # writing still running (``OutputContext.background``)


@dataclass(slots=True)
class OutputContext:
    """Everything an output may use: the build as plain data, the settings, a way to run a
    coroutine under ``build.timeout``, the push targets, the build's log and what the
    outputs before it produced."""

    req: PublishRequest
    settings: Settings
    run_async: RunAsync
    open_targets: Callable[[], Sequence[Target]]
    log: logging.Logger
    results: dict[str, OutputResult] = field(default_factory=dict)
    pool: ThreadPoolExecutor | None = None

    @property
    def attachments(self) -> list[Attachment]:
        """Every attachment offered so far, in output order (once their files are written)."""
        self.settle()
        return [a for result in self.results.values() for a in result.attachments]

    def background(self, work: Callable[[], None]) -> Future[None]:
        """Run ``work`` in a thread while the next outputs run (see module doc)."""
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="publish")
        return self.pool.submit(work)

    def settle(self) -> None:
        """Wait for every output's background work. A ``CondaopsError`` becomes a problem
        line and its output keeps no files or attachments; ``OSError`` is raised as the
        output itself would have raised it."""
        for kind, result in self.results.items():
            if result.pending is None:
                continue
            pending, result.pending = result.pending, None
            try:
                pending.result()
            except CondaopsError as exc:
                result.files, result.attachments = [], []
                result.problems.append(problem_line(exc))
                self.log.warning("output_failed kind=%s reason=%s", kind, exc.reason)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


class Output(Protocol):
    """One form a build is published in."""

    kind: str

    def wanted(self, settings: Settings) -> bool: ...

    def run(self, ctx: OutputContext) -> OutputResult: ...


@dataclass(frozen=True, slots=True)
class Published:
    """What publishing wrote, and what went wrong (one line each; empty when all went well)."""

    files: list[tuple[str, Path]]
    problems: list[str]


def problem_line(exc: CondaopsError) -> str:
    """``Reason: message`` for a failed output; a full disk says so whichever step noticed."""
    return f"{DISK_FULL if is_disk_full(exc) else exc.reason}: {exc.message}"


def run_outputs(outputs: Sequence[Output], ctx: OutputContext) -> Published:
    """Run each wanted output in order; a failing one is a problem line, never the end.

    ``OSError`` (disk full, permissions) is not caught here: the caller turns it into the
    publish error of the whole build, as a disk that refuses writes will refuse the rest."""
    try:
        for output in outputs:
            if not output.wanted(ctx.settings):
                continue
            started = time.monotonic()
            try:
                result = output.run(ctx)
            except CondaopsError as exc:
                result = OutputResult(problems=[problem_line(exc)])
            ctx.results[output.kind] = result
            ctx.log.info(
                "output_finished kind=%s files=%d problems=%d seconds=%.3f%s",
                output.kind,
                len(result.files),
                len(result.problems),
                time.monotonic() - started,
                " (writing on)" if result.pending else "",
            )
        ctx.settle()
    finally:
        ctx.close()
    files = [f for result in ctx.results.values() for f in result.files]
    problems = [p for result in ctx.results.values() for p in result.problems]
    return Published(files, problems)
