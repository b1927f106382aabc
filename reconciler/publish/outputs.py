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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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

    @property
    def attachments(self) -> list[Attachment]:
        """Every attachment offered so far, in output order."""
        return [a for result in self.results.values() for a in result.attachments]


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


def run_outputs(outputs: Sequence[Output], ctx: OutputContext) -> Published:
    """Run each wanted output in order; a failing one is a problem line, never the end.

    ``OSError`` (disk full, permissions) is not caught here: the caller turns it into the
    publish error of the whole build, as a disk that refuses writes will refuse the rest."""
    files: list[tuple[str, Path]] = []
    problems: list[str] = []
    for output in outputs:
        if not output.wanted(ctx.settings):
            continue
        started = time.monotonic()
        try:
            result = output.run(ctx)
        except CondaopsError as exc:
            result = OutputResult(problems=[f"{exc.reason}: {exc.message}"])
        ctx.results[output.kind] = result
        files += result.files
        problems += result.problems
        ctx.log.info(
            "output_finished kind=%s files=%d problems=%d seconds=%.3f",
            output.kind,
            len(result.files),
            len(result.problems),
            time.monotonic() - started,
        )
    return Published(files, problems)
