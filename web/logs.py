"""Build logs: the tail for the page, and the live stream (server-sent events).

A log is never read whole: the page shows at most its last ``TAIL_BYTES``; the stream
reads what was appended since an offset, at most ``CHUNK_BYTES`` at a time, and only
complete lines while the build runs (a line is sent once, whole). Offsets are byte
positions in the file, sent as event ids, so a reconnecting browser resumes where it
stopped (``Last-Event-ID``).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio import to_thread
from litestar.response import ServerSentEventMessage

TAIL_BYTES = 64 * 1024
CHUNK_BYTES = 64 * 1024
POLL_SECONDS = 0.25
STATE_EVERY = 4  # check whether the build ended every this many empty polls
MAX_STREAM_SECONDS = 300.0  # then close; the browser reconnects from the last id


@dataclass(frozen=True, slots=True)
class LogTail:
    text: str
    size: int  # bytes in the file when read
    start: int  # offset of ``text`` in the file
    end: int  # offset just after ``text``: where the live stream continues

    @property
    def shown(self) -> int:
        return self.end - self.start

    @property
    def truncated(self) -> bool:
        return self.start > 0


def read_tail(path: Path, max_bytes: int = TAIL_BYTES, *, whole_lines: bool = True) -> LogTail:
    """The end of ``path``, at most ``max_bytes``, starting at a line. With ``whole_lines``
    (the build still writes) a half-written last line is left for the stream."""
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(size - max_bytes, 0)
        f.seek(start)
        data = f.read(size - start)
    if start > 0:  # drop the partial first line
        cut = data.find(b"\n")
        skipped = cut + 1 if cut >= 0 else len(data)
        data, start = data[skipped:], start + skipped
    if whole_lines:
        data = data[: data.rfind(b"\n") + 1]
    return LogTail(data.decode("utf-8", errors="replace"), size, start, start + len(data))


STEP_BYTES = 16 * 1024
_STEP = re.compile(rb" step_started step=([A-Za-z0-9_-]+)")


def current_step(path: Path | None, max_bytes: int = STEP_BYTES) -> str | None:
    """The step a running build is in: the last ``step_started`` line the build runner
    wrote (``reconciler.build.runner``) in the log's last ``max_bytes``; None before the
    first step, or when the log is not there."""
    if path is None:
        return None
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(size - max_bytes, 0))
            data = f.read(max_bytes)
    except OSError:
        return None
    found = _STEP.findall(data)
    return found[-1].decode() if found else None


def read_from(path: Path, offset: int, *, whole_lines: bool, max_bytes: int = CHUNK_BYTES) -> tuple[str, int]:
    """(text, next offset): what follows ``offset``; with ``whole_lines`` only up to the
    last newline (a half-written line waits for the next read)."""
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read(max_bytes)
    if whole_lines or len(data) == max_bytes:
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) == max_bytes:
            cut = len(data)  # one enormous line: send it in pieces rather than never
        data = data[:cut]
    return data.decode("utf-8", errors="replace"), offset + len(data)


async def follow_log(
    path: Path,
    offset: int,
    build_state: Callable[[], str | None],
    *,
    running: frozenset[str],
    poll: float = POLL_SECONDS,
    max_seconds: float = MAX_STREAM_SECONDS,
) -> AsyncIterator[ServerSentEventMessage]:
    """Events: ``log`` (appended text, id = next offset) until the build leaves the
    ``running`` states and its log is drained, then one ``end`` (data = final state)."""
    deadline = anyio.current_time() + max_seconds
    empty_polls = 0
    state = await to_thread.run_sync(build_state)
    while True:
        active = state in running
        text, next_offset = await to_thread.run_sync(_read, path, offset, active)
        if text:
            offset, empty_polls = next_offset, 0
            yield ServerSentEventMessage(data=text, event="log", id=offset)
            continue
        if not active:
            yield ServerSentEventMessage(data=state or "unknown", event="end", id=offset)
            return
        if anyio.current_time() > deadline:
            return
        await anyio.sleep(poll)
        empty_polls += 1
        if empty_polls % STATE_EVERY == 0:
            state = await to_thread.run_sync(build_state)


def _read(path: Path, offset: int, whole_lines: bool) -> tuple[str, int]:
    try:
        return read_from(path, offset, whole_lines=whole_lines)
    except FileNotFoundError:  # not written yet
        return "", offset
