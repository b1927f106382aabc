"""The directory source against real folders in tmp."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from condaops.config.settings import SourceSettings
from condaops.reconciler.model import EnvRef, SourceSnapshot
from condaops.reconciler.sources.directory import (
    FILE_UNREADABLE,
    SOURCE_UNREADABLE,
    SOURCE_UNSETTLED,
    SYMLINK_OUTSIDE,
    SpecCache,
    read_directory,
)
from tests.support.ci import skip_or_fail

REALDATA_ENVS = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "envs"

NUMPY = "channels:\n  - conda-forge\ndependencies:\n  - numpy\n"
PANDAS = "channels:\n  - conda-forge\ndependencies:\n  - pandas >=2\n"

Tree = Callable[[dict[str, str]], Path]


@pytest.fixture
def make_tree(tmp_path: Path) -> Tree:
    """Factory: write {relative path: content} under a fresh source root."""

    def make(files: dict[str, str]) -> Path:
        root = tmp_path / "source"
        root.mkdir(exist_ok=True)
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        return root

    return make


def scan(root: Path, **kw: object) -> SourceSnapshot:
    cache = kw.pop("cache", None)
    settings = SourceSettings(name="envs", directory=root, **kw)  # type: ignore[arg-type]
    return read_directory(settings, cache=cache)  # type: ignore[arg-type]


def refs(snapshot: SourceSnapshot) -> dict[str, str]:
    return {str(e.ref): e.path for e in snapshot.envs}


def reasons(snapshot: SourceSnapshot) -> dict[str, str]:
    return {r.path: r.reason for r in snapshot.rejections}


def test_reads_every_layout_form_and_ignores_the_rest(make_tree: Tree) -> None:
    root = make_tree(
        {
            "base.yaml": NUMPY,
            "solo/environment.yml": NUMPY,
            "team/numpy.yaml": NUMPY,
            "team/pandas/environment.yaml": PANDAS,
            "team/pandas/conda-lock.yml": "not: an environment",
            "team/pandas/notes.yaml": "companion: file",
            "team/.numpy.yaml.swp": "binary junk",
            "team/numpy.yaml~": "backup",
            "README.md": "# envs",
            "condaops.yaml": "sources: []",
            ".github/workflows/ci.yml": "on: push",
            "a/b/c/d/e.yaml": NUMPY,
        }
    )
    snap = scan(root, default_namespace="shared")
    assert snap.error is None and snap.rejections == ()
    assert refs(snap) == {
        "shared/base": "base.yaml",
        "shared/solo": "solo/environment.yml",
        "team/numpy": "team/numpy.yaml",
        "team/pandas": "team/pandas/environment.yaml",
    }
    pandas = next(e for e in snap.envs if e.ref == EnvRef("team", "pandas"))
    assert pandas.source == "envs" and pandas.revision == snap.revision
    assert [d.text for d in pandas.spec.dependencies] == ["pandas >=2"]
    assert snap.revision is not None and snap.revision.startswith("dir:")


def test_path_subfolder_is_the_root(make_tree: Tree) -> None:
    root = make_tree({"envs/team/a.yaml": NUMPY, "other/team/b.yaml": NUMPY})
    assert set(refs(scan(root, path="envs"))) == {"team/a"}


def test_revision_changes_iff_content_or_names_change(make_tree: Tree) -> None:
    root = make_tree({"team/a.yaml": NUMPY, "team/b.yaml": PANDAS, "notes.txt": "x"})
    first = scan(root).revision
    os.utime(root / "team/a.yaml", ns=(1, 1))  # metadata only
    (root / "notes.txt").write_text("changed")  # not an environment file
    (root / "team/.a.yaml.swp").write_text("editor")
    assert scan(root).revision == first
    (root / "team/a.yaml").write_text(NUMPY + "  - scipy\n")
    second = scan(root).revision
    assert second != first
    (root / "team/a.yaml").rename(root / "team/c.yaml")
    assert scan(root).revision not in (first, second)


def test_parse_failure_is_a_rejection_for_that_env(make_tree: Tree) -> None:
    root = make_tree({"team/good.yaml": NUMPY, "team/bad.yaml": "dependencies: [numpy\n"})
    snap = scan(root)
    assert set(refs(snap)) == {"team/good"}
    (rejection,) = snap.rejections
    assert rejection.ref == EnvRef("team", "bad") and rejection.path == "team/bad.yaml"
    assert rejection.reason == "SpecYamlInvalid" and rejection.source == "envs"
    assert rejection.message.startswith("team/bad.yaml:")


def test_duplicates_reject_both_files(make_tree: Tree) -> None:
    root = make_tree(
        {
            "team/a.yaml": NUMPY,
            "team/a.yml": PANDAS,
            "team/b.yaml": NUMPY,
            "team/b/environment.yaml": PANDAS,
        }
    )
    snap = scan(root)
    assert snap.envs == ()
    assert {(str(r.ref), r.reason) for r in snap.rejections} == {
        ("team/a", "DuplicateEnvironment"),
        ("team/b", "DuplicateEnvironment"),
    }
    message = next(r.message for r in snap.rejections if r.ref == EnvRef("team", "b"))
    assert "team/b.yaml" in message and "team/b/environment.yaml" in message


def test_layout_rejections_are_reported(make_tree: Tree) -> None:
    root = make_tree({"environment.yaml": NUMPY, "team/bad name.yaml": NUMPY, "team/x/y/environment.yaml": NUMPY})
    assert reasons(scan(root)) == {
        "environment.yaml": "LayoutUnsupported",
        "team/bad name.yaml": "NameInvalid",
        "team/x/y/environment.yaml": "LayoutUnsupported",
    }


def test_differing_name_key_is_a_warning(make_tree: Tree) -> None:
    root = make_tree(
        {
            "team/a.yaml": "name: something-else\n" + NUMPY,
            "team/b.yaml": "name: b\n" + NUMPY,
        }
    )
    envs = {str(e.ref): e for e in scan(root).envs}
    assert any("something-else" in w and "path wins" in w for w in envs["team/a"].warnings)
    assert envs["team/b"].warnings == ()


def test_missing_root_is_unreadable(tmp_path: Path) -> None:
    snap = scan(tmp_path / "nope")
    assert (snap.revision, snap.envs, snap.error_reason) == (None, (), SOURCE_UNREADABLE)
    assert str(tmp_path / "nope") in (snap.error or "")


def test_root_that_is_a_file_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert scan(tmp_path / "file").error_reason == SOURCE_UNREADABLE


def test_unreadable_subfolder_makes_the_whole_source_unreadable(tmp_path: Path) -> None:
    # Root reads folders whatever their mode, so as root the scan runs as ``nobody``.
    base = Path(tempfile.mkdtemp(prefix="condaops-perm-", dir="/tmp"))
    try:
        base.chmod(0o755)
        root = base / "envs"
        for rel in ("team/a.yaml", "locked/b.yaml"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(NUMPY)
        for folder in (root, root / "team"):
            folder.chmod(0o755)
        (root / "team/a.yaml").chmod(0o644)
        (root / "locked").chmod(0)
        assert _scan_reason(root) == SOURCE_UNREADABLE
        (root / "locked").chmod(0o755)
        (root / "locked/b.yaml").chmod(0o644)
        assert _scan_reason(root) == "ok"  # the same tree, readable: the check above was real
    finally:
        (base / "envs" / "locked").chmod(0o755)
        shutil.rmtree(base)


def _scan_reason(root: Path) -> str:
    """``read_directory`` on ``root`` as an unprivileged user; its error reason or ``ok``."""
    code = (
        "import sys; from pathlib import Path\n"
        "from condaops.config.settings import SourceSettings\n"
        "from condaops.reconciler.sources.directory import read_directory\n"
        "snap = read_directory(SourceSettings(name='t', directory=Path(sys.argv[1])))\n"
        "print(snap.error_reason or 'ok')\n"
    )
    cmd = [sys.executable, "-c", code, str(root)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("running as root needs setpriv (util-linux) to drop privileges", pytrace=False)
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/", env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_empty_root_is_an_empty_snapshot(make_tree: Tree) -> None:
    root = make_tree({"README.md": "nothing yet"})
    snap = scan(root)
    assert snap.error is None and snap.envs == () and snap.rejections == ()
    assert snap.revision == scan(make_tree({})).revision


def test_symlinks_followed_only_inside_the_root(make_tree: Tree, tmp_path: Path) -> None:
    root = make_tree({"team/a.yaml": NUMPY, "shared/base/environment.yaml": PANDAS})
    outside = tmp_path / "outside"
    (outside / "ns").mkdir(parents=True)
    (outside / "secret.yaml").write_text(NUMPY)
    (outside / "ns" / "x.yaml").write_text(NUMPY)
    (root / "team/alias.yaml").symlink_to("../shared/base/environment.yaml")
    (root / "team/escape.yaml").symlink_to(outside / "secret.yaml")
    (root / "team/dangling.yaml").symlink_to("nowhere.yaml")
    (root / "linked").symlink_to(root / "team")
    (root / "escaped").symlink_to(outside / "ns")
    snap = scan(root)
    assert set(refs(snap)) == {"team/a", "team/alias", "shared/base", "linked/a", "linked/alias"}
    assert reasons(snap) == {
        "escaped": SYMLINK_OUTSIDE,
        "linked/dangling.yaml": FILE_UNREADABLE,
        "linked/escape.yaml": SYMLINK_OUTSIDE,
        "team/dangling.yaml": FILE_UNREADABLE,
        "team/escape.yaml": SYMLINK_OUTSIDE,
    }


def test_oversized_file_is_rejected_without_being_read(make_tree: Tree) -> None:
    root = make_tree({"team/a.yaml": NUMPY})
    with open(root / "team/huge.yaml", "wb") as handle:
        handle.truncate(8 << 30)  # sparse: reading it whole would take seconds and 8 GiB
    started = time.monotonic()
    snap = scan(root)
    assert time.monotonic() - started < 2
    assert reasons(snap) == {"team/huge.yaml": "SpecTooLarge"}
    assert set(refs(snap)) == {"team/a"}


def test_fifo_does_not_hang_the_scan(make_tree: Tree) -> None:
    root = make_tree({"team/a.yaml": NUMPY})
    os.mkfifo(root / "team/pipe.yaml")
    assert reasons(scan(root)) == {"team/pipe.yaml": FILE_UNREADABLE}


def test_file_changing_during_the_read_leaves_the_source_unsettled(make_tree: Tree) -> None:
    root = make_tree({"team/a.yaml": NUMPY, **{f"team/e{i}.yaml": NUMPY for i in range(50)}})
    writer = subprocess.Popen([sys.executable, "-c", _APPENDER, str(root / "team/a.yaml")])
    try:
        deadline, snap = time.monotonic() + 5, None
        while time.monotonic() < deadline:
            snap = scan(root)
            if snap.error_reason == SOURCE_UNSETTLED:
                break
    finally:
        writer.kill()
        writer.wait()
    assert snap is not None and snap.error_reason == SOURCE_UNSETTLED
    assert snap.revision is None and snap.envs == () and "team/a.yaml" in (snap.error or "")
    (root / "team/a.yaml").write_text(NUMPY)
    assert scan(root).error is None


# Appends comments (keeping valid YAML) as fast as it can, rewinding at 64 KiB.
_APPENDER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
base = os.fstat(fd).st_size
while True:
    for _ in range(8192):
        os.write(fd, b"# x\\n")
    os.ftruncate(fd, base)
"""


def test_cache_serves_unchanged_files_and_sees_every_change(make_tree: Tree) -> None:
    root = make_tree({"team/a.yaml": NUMPY, "team/b.yaml": PANDAS, "team/c.yaml": "bad: [\n"})
    cache = SpecCache(racy_window=0)
    cold = scan(root, cache=cache)
    assert len(cache) == 3
    assert scan(root, cache=cache) == cold
    # Same size, mtime put back: only the ctime tells this edit apart.
    info = os.stat(root / "team/a.yaml")
    (root / "team/a.yaml").write_text(NUMPY.replace("numpy", "scipy"))
    os.utime(root / "team/a.yaml", ns=(info.st_atime_ns, info.st_mtime_ns))
    edited = scan(root, cache=cache)
    assert edited.revision != cold.revision
    a = next(e for e in edited.envs if e.ref == EnvRef("team", "a"))
    assert [d.text for d in a.spec.dependencies] == ["scipy"]
    (root / "team/b.yaml").unlink()
    scan(root, cache=cache)
    assert len(cache) == 2


def test_fresh_files_are_not_cached(make_tree: Tree) -> None:
    root = make_tree({"team/a.yaml": NUMPY})
    cache = SpecCache()  # default racy window: files written just now are re-read
    scan(root, cache=cache)
    assert len(cache) == 0


def test_real_environment_files_all_become_envs_or_rejections(make_tree: Tree) -> None:
    if not REALDATA_ENVS.is_dir():
        skip_or_fail(f"the real environment files are missing at {REALDATA_ENVS} (../shared beside the project)")
    root = make_tree({})
    files = sorted(p for p in REALDATA_ENVS.iterdir() if p.suffix in (".yaml", ".yml"))
    for path in files:
        shutil.copy(path, root / path.name)
    snap = scan(root)
    assert snap.error is None
    assert len(snap.envs) + len(snap.rejections) == len(files)
    assert len(snap.envs) > len(files) // 2
    assert all(r.ref is not None and r.message for r in snap.rejections)


def test_git_source_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="not a directory source"):
        read_directory(SourceSettings(name="repo", git="https://example.invalid/envs.git"))


def test_escaping_folder_symlink_inside_an_env_folder_is_not_reported(make_tree: Tree, tmp_path: Path) -> None:
    root = make_tree({"team/a/environment.yaml": NUMPY})
    (tmp_path / "data").mkdir()
    (root / "team/a/data").symlink_to(tmp_path / "data")  # a companion folder, not an env
    snap = scan(root)
    assert set(refs(snap)) == {"team/a"} and snap.rejections == ()


def test_policy_files_are_read_and_count_in_the_revision(make_tree: Tree) -> None:
    root = make_tree({"team/a.yaml": NUMPY, "condaops-policy.yaml": "licenses: {deny: [GPL-*]}\n"})
    first = scan(root)
    assert refs(first) == {"team/a": "team/a.yaml"}
    assert [(f.path, f.data) for f in first.policy_files] == [("condaops-policy.yaml", b"licenses: {deny: [GPL-*]}\n")]
    (root / "team/condaops-policy.yaml").write_text("size: {max: 1 GB}\n")
    second = scan(root)
    assert [f.path for f in second.policy_files] == ["condaops-policy.yaml", "team/condaops-policy.yaml"]
    assert second.revision != first.revision and refs(second) == refs(first)
