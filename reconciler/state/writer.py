"""One store, one writer: a SQLite store is written by one condaops process at a time.

SQLite keeps the build queue of ``condaops serve`` in that process's memory, and a
process that starts reconciling requeues every build it finds ``building`` (nothing else
can be running them — unless another process is). Two such processes on one store would
build and publish the same build twice. So the processes that write — ``serve``,
``reconcile``, ``gc``, ``rollback``, ``retire`` — take an exclusive lock beside the
database file (``<database>.lock``, an ``flock``: released by the kernel when the process
ends, even on ``kill -9``), and a second one refuses at once, naming the holder (pid,
host, command, since when) and what to do. Reading commands (``status``, ``history``,
``plan``, ``changes``) take no lock.

PostgreSQL is made for several processes (leases, APScheduler's shared queue, claims):
no lock is taken there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.reasons import Reason

STORE_BUSY = Reason.STORE_BUSY  # another process writes to this SQLite store


class StoreBusyError(CondaopsError):
    """Another condaops process holds the SQLite store's writer lock."""

    reason = STORE_BUSY


@dataclass(frozen=True, slots=True)
class Holder:
    pid: int
    host: str
    command: str
    since: str

    def describe(self) -> str:
        return f"`condaops {self.command}` (pid {self.pid} on {self.host}, since {self.since})"


def lock_path(database_url: str) -> Path | None:
    """Where the writer lock of a SQLite database lives; None when there is no such file
    (PostgreSQL, in-memory SQLite)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).with_name(Path(url.database).name + ".lock")


def advice(command: str, holder: Holder) -> str:
    """What the refused ``command`` should do, given who holds the store. Pure."""
    if command in ("serve", "reconcile"):
        if holder.command.startswith("serve"):
            return (
                "it reconciles and builds on its own: follow it with `condaops status`, or stop it "
                f"(kill {holder.pid}, or systemctl stop condaops) before starting another"
            )
        return f"wait until it ends (pid {holder.pid}), then run this again"
    return (
        f"stop it first (kill {holder.pid}, or systemctl stop condaops; builds in progress are re-run "
        "at its next start), run this again, then start it again; on PostgreSQL these commands run "
        "beside the service"
    )


class WriterLock:
    """The exclusive right to write one SQLite store, for the life of this process's command."""

    def __init__(self, path: Path, command: str) -> None:
        self.path = path
        self.command = command
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or ``StoreBusyError`` naming the holder and what to do."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(handle)
            handle.close()
            raise StoreBusyError(
                f"another condaops process writes to this store ({self.path.with_suffix('')}): "
                f"{holder.describe()}; {advice(self.command.split()[0], holder)}"
            ) from None
        me = Holder(
            os.getpid(), socket.gethostname(), self.command, datetime.now(timezone.utc).isoformat(timespec="seconds")
        )
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(_as_dict(me)))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.seek(0)
                self._file.truncate()
            self._file.close()  # closing the descriptor drops the flock
            self._file = None


@contextlib.contextmanager
def store_writer(database_url: str, command: str) -> Iterator[None]:
    """Hold the writer lock of a SQLite store for the block (nothing for PostgreSQL)."""
    path = lock_path(database_url)
    if path is None:
        yield
        return
    lock = WriterLock(path, command)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _as_dict(holder: Holder) -> dict[str, object]:
    return {"pid": holder.pid, "host": holder.host, "command": holder.command, "since": holder.since}


def _read_holder(handle: IO[str]) -> Holder:
    """Who holds the lock, as it wrote itself down (it may be mid-write: then unknown)."""
    try:
        handle.seek(0)
        data = json.loads(handle.read() or "{}")
        return Holder(int(data["pid"]), str(data["host"]), str(data["command"]), str(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Holder(0, "an unknown host", "?", "an unknown time")
