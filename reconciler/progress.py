"""Build progress for the terminal: a redrawn bar on a TTY, plain lines otherwise."""

from __future__ import annotations

import threading
import time
from typing import TextIO

from condaops.reconciler.model import BuildOutcome


class Progress:
    """Listens to worker events (``on_build``) and reports them on ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started: dict[int, float] = {}
        self.done = 0
        self.failed = 0
        self._lock = threading.Lock()

    def on_build(self, build_id: int, outcome: BuildOutcome | None) -> None:
        with self._lock:
            if outcome is None:
                self.started[build_id] = time.monotonic()
                self._line(f"build {build_id} started")
            else:
                took = time.monotonic() - self.started.get(build_id, time.monotonic())
                self.done += 1
                if outcome.ok:
                    self._line(f"build {build_id} ready in {took:.1f}s")
                else:
                    self.failed += 1
                    self._line(f"build {build_id} failed: {outcome.reason}: {outcome.message}")
            self._bar()

    def _line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def _bar(self) -> None:
        if not self.tty:
            return
        total = max(len(self.started), 1)
        width = 30
        filled = int(width * self.done / total)
        running = len(self.started) - self.done
        self.stream.write(
            f"[{'#' * filled}{'-' * (width - filled)}] {self.done}/{len(self.started)} "
            f"done, {running} running, {self.failed} failed"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
