"""Reading build logs in pieces: the page's tail and the live stream's chunks."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from condaops.web.logs import current_step, follow_log, read_from, read_tail


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "build.log"
    path.write_bytes(text.encode())
    return path


def test_tail_of_a_small_log_is_all_of_it(tmp_path: Path) -> None:
    tail = read_tail(write(tmp_path, "a\nb\n"), 1024)
    assert (tail.text, tail.start, tail.end, tail.truncated) == ("a\nb\n", 0, 4, False)


def test_tail_starts_at_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "".join(f"line {i}\n" for i in range(100)))

    tail = read_tail(path, 30)

    assert tail.text.startswith("line ") and tail.text.endswith("line 99\n")
    assert tail.truncated and tail.shown <= 30 and tail.end == path.stat().st_size


def test_tail_keeps_a_half_written_line_for_the_stream(tmp_path: Path) -> None:
    path = write(tmp_path, "done\nhalf")

    assert read_tail(path).text == "done\n" and read_tail(path).end == 5
    assert read_tail(path, whole_lines=False).text == "done\nhalf"


def test_tail_decodes_broken_utf8(tmp_path: Path) -> None:
    path = tmp_path / "build.log"
    path.write_bytes(b"caf\xc3\n\xff\n")
    assert read_tail(path).text == "caf\ufffd\n\ufffd\n"


@pytest.mark.parametrize(
    ("whole_lines", "text", "offset"),
    [(True, "b\n", 4), (False, "b\nc", 5)],
    ids=["running", "finished"],
)
def test_read_from(tmp_path: Path, whole_lines: bool, text: str, offset: int) -> None:
    path = write(tmp_path, "a\nb\nc")
    assert read_from(path, 2, whole_lines=whole_lines) == (text, offset)


def test_read_from_sends_an_enormous_line_in_pieces(tmp_path: Path) -> None:
    path = write(tmp_path, "x" * 100)
    assert read_from(path, 0, whole_lines=True, max_bytes=40) == ("x" * 40, 40)


def test_follow_log_until_the_build_ends(tmp_path: Path) -> None:
    path = write(tmp_path, "one\n")
    states = iter(["building", "building", "building", "completed"])

    def state() -> str:
        return next(states, "completed")

    async def collect() -> list[tuple[str | None, str]]:
        events = []
        async for message in follow_log(path, 0, state, running=frozenset({"building"}), poll=0.01):
            events.append((message.event, str(message.data)))
            if len(events) == 1:
                with path.open("a") as f:
                    f.write("two\nthree")  # the last line is still being written
        return events

    events = anyio.run(collect)

    assert events[0] == ("log", "one\n")
    assert "".join(data for kind, data in events if kind == "log") == "one\ntwo\nthree"
    assert events[-1] == ("end", "completed")


def test_follow_log_of_a_missing_file_waits_then_ends(tmp_path: Path) -> None:
    states = iter(["queued", "failed"])

    async def collect() -> list[str | None]:
        return [
            m.event
            async for m in follow_log(
                tmp_path / "none.log", 0, lambda: next(states, "failed"), running=frozenset({"queued"}), poll=0.01
            )
        ]

    assert anyio.run(collect) == ["end"]


def test_follow_log_gives_up_after_its_time(tmp_path: Path) -> None:
    path = write(tmp_path, "")

    async def collect() -> list[str | None]:
        return [
            m.event
            async for m in follow_log(
                path, 0, lambda: "building", running=frozenset({"building"}), poll=0.01, max_seconds=0.05
            )
        ]

    assert anyio.run(collect) == []


def test_current_step_is_the_last_one_started(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    assert current_step(log) is None and current_step(None) is None  # not written yet
    log.write_text("x INFO build_started env=a/b\nx INFO step_started step=solve\nx INFO solved\n")
    assert current_step(log) == "solve"
    with log.open("a") as f:
        f.write("x INFO step_started step=pip-install\n" + "download_progress\n" * 3000)
    assert current_step(log) is None  # older than the bytes read: unknown, never a wrong step
    with log.open("a") as f:
        f.write("x INFO step_started step=lock\n")
    assert current_step(log) == "lock"
