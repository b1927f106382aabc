"""DirectoryWatcher against real files in tmp, and the filesystem-type detection it uses."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from condaops.config.settings import SourceSettings
from condaops.reconciler.sources.fstype import (
    Mount,
    is_network_fstype,
    is_network_path,
    mount_of,
    parse_mountinfo,
)
from condaops.reconciler.sources.watch import POLL_QUIET_MIN, ROOT, DirectoryWatcher

QUIET = 0.2
STEP = 0.02
Signals = list[tuple[float, frozenset[str]]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_watcher(root: Path, *, polling: bool | None = False, **kw: object) -> DirectoryWatcher:
    settings = SourceSettings(name="w", directory=root, polling=polling)
    return DirectoryWatcher(settings, quiet=QUIET, step=STEP, **kw)  # type: ignore[arg-type]


@asynccontextmanager
async def running(watcher: DirectoryWatcher, *, ready: bool = True) -> AsyncIterator[Signals]:
    """Run ``watcher`` in the background, recording (time, paths) of every signal."""
    signals: Signals = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run, lambda paths: signals.append((time.monotonic(), paths)))
        if ready:
            with anyio.fail_after(5):
                while not watcher.watching:
                    await anyio.sleep(0.01)
        yield signals
        watcher.stop()


async def first_signal(signals: Signals, timeout: float = 3.0) -> tuple[float, frozenset[str]]:
    with anyio.fail_after(timeout):
        while not signals:
            await anyio.sleep(0.01)
    return signals[0]


@pytest.mark.anyio
async def test_new_file_gives_one_signal_after_the_quiet_period(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    async with running(make_watcher(tmp_path)) as signals:
        written = time.monotonic()
        (tmp_path / "team" / "a.yaml").write_text("dependencies: [numpy]\n")
        at, paths = await first_signal(signals)
        await anyio.sleep(3 * QUIET)
    assert paths == {"team/a.yaml"}
    assert QUIET * 0.95 <= at - written < QUIET + 0.5
    assert len(signals) == 1


@pytest.mark.anyio
async def test_editor_leftovers_and_other_files_alone_do_not_signal(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    async with running(make_watcher(tmp_path)) as signals:
        for name in (
            ".a.yaml.swp",
            ".a.yaml.swx",
            "a.yaml~",
            "4913",
            ".#a.yaml",
            "#a.yaml#",
            "a.yaml.tmp",
            "a.yaml.orig",
            "README.md",
            "notes.txt",
            "condaops.yaml",
        ):
            (tmp_path / "team" / name).write_text("x")
        (tmp_path / ".git").mkdir()
        (tmp_path / ".git" / "index.yaml").write_text("x")
        (tmp_path / "team" / ".a.yaml.swp").unlink()
        await anyio.sleep(3 * QUIET)
    assert signals == []


@pytest.mark.anyio
async def test_chunked_write_gives_one_signal_after_the_last_chunk(tmp_path: Path) -> None:
    async with running(make_watcher(tmp_path)) as signals:
        with open(tmp_path / "a.yaml", "w") as handle:
            for _ in range(5):
                handle.write("# chunk\n")
                handle.flush()
                last_chunk = time.monotonic()
                await anyio.sleep(QUIET / 2)
        at, paths = await first_signal(signals)
        await anyio.sleep(2 * QUIET)
    assert paths == {"a.yaml"} and len(signals) == 1
    assert at - last_chunk >= QUIET * 0.95


@pytest.mark.anyio
async def test_polling_mode_signals_changes(tmp_path: Path) -> None:
    watcher = make_watcher(tmp_path, polling=True, poll_delay=0.05)
    assert watcher.polling and watcher.effective_quiet == POLL_QUIET_MIN
    async with running(watcher) as signals:
        written = time.monotonic()
        (tmp_path / "team").mkdir()
        (tmp_path / "team" / "a.yaml").write_text("dependencies: [numpy]\n")
        (tmp_path / "team" / ".a.yaml.swp").write_text("x")
        at, paths = await first_signal(signals, timeout=5)
    assert paths == {"team", "team/a.yaml"}
    assert POLL_QUIET_MIN * 0.95 <= at - written < POLL_QUIET_MIN + 1.0


@pytest.mark.anyio
async def test_stop_ends_the_watch_promptly(tmp_path: Path) -> None:
    watcher = make_watcher(tmp_path)
    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run, lambda paths: None)
        with anyio.fail_after(5):
            while not watcher.watching:
                await anyio.sleep(0.01)
        stopped = time.monotonic()
        watcher.stop()
    assert time.monotonic() - stopped < 0.3


@pytest.mark.anyio
async def test_stopped_watcher_yields_nothing(tmp_path: Path) -> None:
    watcher = make_watcher(tmp_path)
    watcher.stop()
    with anyio.fail_after(1):
        assert [batch async for batch in watcher] == []


@pytest.mark.anyio
async def test_idle_watch_does_not_busy_loop(tmp_path: Path) -> None:
    async with running(make_watcher(tmp_path)):
        cpu, wall = time.process_time(), time.monotonic()
        await anyio.sleep(0.5)
        used = (time.process_time() - cpu) / (time.monotonic() - wall)
    assert used < 0.05


@pytest.mark.anyio
async def test_missing_root_is_waited_for_then_watched(tmp_path: Path) -> None:
    root = tmp_path / "later"
    watcher = make_watcher(root, root_retry=0.05)
    async with running(watcher, ready=False) as signals:
        await anyio.sleep(0.2)
        assert signals == [] and not watcher.watching
        (root / "team").mkdir(parents=True)
        (root / "team" / "a.yaml").write_text("x")
        _, paths = await first_signal(signals)
        assert ROOT in paths
        with anyio.fail_after(3):
            while not watcher.watching:
                await anyio.sleep(0.01)
        (root / "team" / "b.yaml").write_text("x")
        with anyio.fail_after(3):
            while len(signals) < 2:
                await anyio.sleep(0.01)
    assert signals[1][1] == {"team/b.yaml"}


@pytest.mark.anyio
async def test_root_removed_is_signalled_and_stop_still_works(tmp_path: Path) -> None:
    root = tmp_path / "source"
    (root / "team").mkdir(parents=True)
    watcher = make_watcher(root, root_retry=0.05)
    async with running(watcher) as signals:
        shutil.rmtree(root)
        _, paths = await first_signal(signals)
    assert ROOT in paths


# --- backend choice and filesystem types ------------------------------------------

MOUNTINFO = r"""22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 27 0:40 / /home rw,relatime shared:20 master:3 - nfs4 filer:/export/home rw,vers=4.2
41 27 0:41 / /mnt/data rw - lustre 10.0.0.1@tcp:/scratch rw
42 27 0:42 / /mnt/data2 rw - xfs /dev/sdb rw
43 41 0:43 / /mnt/data/local rw - ext4 /dev/sdc rw
44 27 0:44 / /mnt/my\040share rw - cifs //srv/share rw
45 27 0:45 / /remote rw - fuse.sshfs user@host:/ rw
46 27 0:46 / /remote rw - tmpfs tmpfs rw
this line is garbage
"""

MOUNT_CASES = [
    ("root-fs", "/work/envs", "/", "ext4"),
    ("nfs-home", "/home/alice/envs", "/home", "nfs4"),
    ("mount-point-itself", "/home", "/home", "nfs4"),
    ("longest-prefix-wins", "/mnt/data/local/envs", "/mnt/data/local", "ext4"),
    ("prefix-is-not-a-path-prefix", "/mnt/data2/envs", "/mnt/data2", "xfs"),
    ("lustre", "/mnt/data/envs", "/mnt/data", "lustre"),
    ("escaped-space", "/mnt/my share/envs", "/mnt/my share", "cifs"),
    ("stacked-mount-last-wins", "/remote/x", "/remote", "tmpfs"),
]


@pytest.mark.parametrize(
    ("path", "mount_point", "fstype"), [c[1:] for c in MOUNT_CASES], ids=[c[0] for c in MOUNT_CASES]
)
def test_mount_of(path: str, mount_point: str, fstype: str) -> None:
    mount = mount_of(path, parse_mountinfo(MOUNTINFO))
    assert mount is not None and (mount.mount_point, mount.fstype) == (mount_point, fstype)


def test_parse_mountinfo_reads_sources_and_skips_garbage() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert len(mounts) == 9
    assert Mount("/home", "nfs4", "filer:/export/home") in mounts


FSTYPES = [
    ("nfs", True),
    ("nfs4", True),
    ("cifs", True),
    ("smb3", True),
    ("lustre", True),
    ("gpfs", True),
    ("cephfs", True),
    ("fuse.sshfs", True),
    ("glusterfs", True),
    ("fuse.glusterfs", True),
    ("beegfs", True),
    ("9p", True),
    ("NFS4", True),
    ("ext4", False),
    ("xfs", False),
    ("btrfs", False),
    ("tmpfs", False),
    ("overlay", False),
    ("fuse.fuse-overlayfs", False),
    ("zfs", False),
]


@pytest.mark.parametrize(("fstype", "network"), FSTYPES, ids=[f[0] for f in FSTYPES])
def test_is_network_fstype(fstype: str, network: bool) -> None:
    assert is_network_fstype(fstype) is network


def _fake_mountinfo(tmp_path: Path, fstype: str) -> Path:
    info = tmp_path / "mountinfo"
    info.write_text(
        f"27 1 254:0 / / rw - ext4 /dev/vda rw\n40 27 0:40 / {tmp_path.resolve()} rw - {fstype} filer:/x rw\n"
    )
    return info


BACKENDS = [
    ("nfs-auto-polls", "nfs4", None, True),
    ("local-auto-inotify", "ext4", None, False),
    ("forced-polling", "ext4", True, True),
    ("forced-inotify-on-nfs", "nfs4", False, False),
]


@pytest.mark.parametrize(("fstype", "setting", "polls"), [b[1:] for b in BACKENDS], ids=[b[0] for b in BACKENDS])
def test_backend_choice(tmp_path: Path, fstype: str, setting: bool | None, polls: bool) -> None:
    info = _fake_mountinfo(tmp_path, fstype)
    watcher = make_watcher(tmp_path / "not-yet" / "root", polling=setting, mountinfo=info)
    assert watcher.polling is polls


def test_is_network_path_unknown_without_mountinfo(tmp_path: Path) -> None:
    assert is_network_path(tmp_path, mountinfo=tmp_path / "missing") is False


@pytest.mark.anyio
async def test_replaced_root_is_signalled_and_the_new_one_watched(tmp_path: Path) -> None:
    root = tmp_path / "source"
    root.mkdir()
    watcher = make_watcher(root, root_retry=0.05)
    async with running(watcher) as signals:
        shutil.rmtree(root)
        root.mkdir()
        _, paths = await first_signal(signals)
        assert ROOT in paths
        with anyio.fail_after(3):
            while not watcher.watching:
                await anyio.sleep(0.01)
        (root / "a.yaml").write_text("x")
        with anyio.fail_after(3):
            while not any("a.yaml" in batch for _, batch in signals):
                await anyio.sleep(0.01)
