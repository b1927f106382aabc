"""The Git source against real Git: repositories made with the git CLI in tmp, read as
local paths and through ``git daemon``, smart HTTP (``git http-backend``) and sshd, all on
127.0.0.1."""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dulwich.repo import Repo

from condaops.config.settings import Settings, SourceSettings
from condaops.reconciler.model import EnvRef, RecordedEnv, SourceSnapshot
from condaops.reconciler.plan import RETIRE, plan
from condaops.reconciler.service import SourceReader, policy_of, read_source
from condaops.reconciler.sources.git import GitSource
from condaops.reconciler.sources.gitmirror import MAX_PACKS, blob_size
from condaops.reconciler.sources.gitrules import UNSUPPORTED_TREE_ENTRY
from condaops.reconciler.specfile import MAX_SPEC_BYTES
from tests.support.clock import Clock
from tests.support.gitserver import (
    GitRepo,
    free_port,
    require_git,
    serve_git_daemon,
    serve_git_http,
    serve_git_ssh,
)

pytestmark = pytest.mark.integration

NUMPY = "channels:\n  - conda-forge\ndependencies:\n  - numpy\n"
PANDAS = "channels:\n  - conda-forge\ndependencies:\n  - pandas >=2\n"
SCIPY = "dependencies:\n  - scipy\n"
TOKEN = "s3cr3t-t0ken-value"  # distinctive: searched for in logs and messages
LOGGER = "condaops.sources.git"

MakeRepo = Callable[..., GitRepo]
OpenSource = Callable[..., GitSource]


@pytest.fixture
def git_root(tmp_path: Path) -> Path:
    require_git()
    root = tmp_path / "served"
    root.mkdir()
    return root


@pytest.fixture
def make_repo(git_root: Path) -> MakeRepo:
    """Factory: a repository ``git_root/<name>`` with a first commit of ``files``."""

    def make(files: dict[str, str] | None = None, *, name: str = "envs", branch: str = "main") -> GitRepo:
        repo = GitRepo(git_root / name, branch=branch)
        repo.commit(files or {}, "initial")
        return repo

    return make


@pytest.fixture(params=["local", "git-daemon", "http"])
def remote(request: pytest.FixtureRequest, git_root: Path) -> Iterator[str]:
    """The base location under which every repository of ``git_root`` is reachable."""
    with contextlib.ExitStack() as stack:
        if request.param == "local":
            yield str(git_root)
        elif request.param == "git-daemon":
            yield stack.enter_context(serve_git_daemon(git_root))
        else:
            yield stack.enter_context(serve_git_http(git_root))


@pytest.fixture
def clock() -> Clock[float]:
    return Clock(1000.0)


@pytest.fixture
def open_source(tmp_path: Path, clock: Clock[float]) -> Iterator[OpenSource]:
    """Factory: a ``GitSource`` for ``git`` (closed when the test ends)."""
    opened: list[GitSource] = []

    def open_(git: str, *, environ: dict[str, str] | None = None, **settings: object) -> GitSource:
        config = SourceSettings(name=str(settings.pop("name", "envs")), git=git, **settings)  # type: ignore[arg-type]
        source = GitSource(config, cache_dir=tmp_path / "mirrors", clock=clock, environ=environ or {})
        opened.append(source)
        return source

    yield open_
    for source in opened:
        source.close()


def refs(snapshot: SourceSnapshot) -> dict[str, str]:
    return {str(e.ref): e.path for e in snapshot.envs}


def reasons(snapshot: SourceSnapshot) -> dict[str, str]:
    return {r.path: r.reason for r in snapshot.rejections}


def messages(caplog: pytest.LogCaptureFixture, event: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(event)]


# --- reading ------------------------------------------------------------------------------


def test_reads_the_layout_at_the_branch_head(remote: str, make_repo: MakeRepo, open_source: OpenSource) -> None:
    repo = make_repo(
        {
            "base.yaml": NUMPY,
            "team/numpy.yaml": NUMPY,
            "team/pandas/environment.yaml": PANDAS,
            "team/pandas/conda-lock.yml": "not: an environment",
            "README.md": "# envs",
            ".github/workflows/ci.yml": "on: push",
            "broken/env.yaml": "dependencies: [\n",
        }
    )
    snap = open_source(f"{remote}/envs", default_namespace="shared").read()

    assert snap.error is None
    assert snap.revision == repo.head()
    assert refs(snap) == {
        "shared/base": "base.yaml",
        "team/numpy": "team/numpy.yaml",
        "team/pandas": "team/pandas/environment.yaml",
    }
    assert reasons(snap) == {"broken/env.yaml": "SpecYamlInvalid"}
    assert {e.revision for e in snap.envs} == {repo.head()}
    pandas = next(e for e in snap.envs if e.ref == EnvRef("team", "pandas"))
    assert [d.text for d in pandas.spec.dependencies] == ["pandas >=2"]


def test_a_poll_without_a_new_commit_only_lists_refs(
    remote: str, make_repo: MakeRepo, open_source: OpenSource, caplog: pytest.LogCaptureFixture
) -> None:
    make_repo({"team/numpy.yaml": NUMPY})
    source = open_source(f"{remote}/envs")
    first = source.read()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        again = source.read()

    assert again is first
    assert messages(caplog, "git_fetched") == [] and messages(caplog, "git_read") == []


def test_only_changed_files_are_parsed_again(
    remote: str, make_repo: MakeRepo, open_source: OpenSource, caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repo({f"team/env{i}.yaml": NUMPY.replace("numpy", f"numpy{i}") for i in range(20)})
    source = open_source(f"{remote}/envs")
    source.read()
    parsed = source.parsed_blobs
    moved = NUMPY.replace("numpy", "numpy5")
    head = repo.commit({"team/env3.yaml": PANDAS, "team/env4.yaml": None, "team/moved.yaml": moved})
    with caplog.at_level(logging.INFO, logger=LOGGER):
        snap = source.read()

    assert snap.revision == head
    assert source.parsed_blobs == parsed + 1  # env3's new content; the rename is a known blob
    assert "team/env4" not in refs(snap) and refs(snap)["team/moved"] == "team/moved.yaml"
    assert [d.text for e in snap.envs if e.ref.name == "env3" for d in e.spec.dependencies] == ["pandas >=2"]
    assert any("mode=incremental" in m for m in messages(caplog, "git_read"))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"team/env3.yaml": PANDAS}, id="modified"),
        pytest.param({"team/new.yaml": SCIPY}, id="added"),
        pytest.param({"team/env4.yaml": None}, id="removed"),
        pytest.param({"team/env2.yaml": "dependencies: [\n"}, id="now-invalid"),
        pytest.param({"condaops-policy.yaml": "{}\n"}, id="a-policy-file: read in full"),
    ],
)
def test_a_commit_is_patched_onto_the_last_snapshot_as_a_full_read_gives_it(
    remote: str, make_repo: MakeRepo, open_source: OpenSource, change: dict[str, str | None]
) -> None:
    repo = make_repo({f"team/env{i}.yaml": NUMPY.replace("numpy", f"numpy{i}") for i in range(6)})
    source = open_source(f"{remote}/envs")
    last = source.read()
    head = repo.commit(change)
    snap = source.read()
    full = open_source(f"{remote}/envs", name="envs").read()  # a new reader: the commit read in full

    assert snap == full and snap.revision == full.revision == head
    before = {e.ref: e for e in last.envs}
    for env in snap.envs:
        if env.path in change:
            assert env.revision == head  # read at the new commit
        elif "condaops-policy.yaml" not in change:
            assert env is before[env.ref]  # handed back as read: no work per environment


def test_sub_folder_paths_are_relative_to_it(remote: str, make_repo: MakeRepo, open_source: OpenSource) -> None:
    repo = make_repo({"conda/envs/team/numpy.yaml": NUMPY, "conda/envs/solo.yaml": NUMPY, "team/other.yaml": NUMPY})
    source = open_source(f"{remote}/envs", path="./conda/envs/")

    assert refs(source.read()) == {"team/numpy": "team/numpy.yaml", "default/solo": "solo.yaml"}

    repo.commit({"conda/envs/team/numpy.yaml": None, "conda/envs/solo.yaml": None})  # the folder is gone
    emptied = source.read()
    assert (emptied.error, emptied.envs, emptied.rejections, emptied.revision) == (None, (), (), repo.head())

    repo.commit({"conda/envs": "now a file"})
    as_file = source.read()
    assert as_file.error_reason == "SourceUnreadable" and "'./conda/envs/' is not a folder" in str(as_file.error)


def test_a_commit_deleting_every_file_is_an_empty_snapshot_that_retires_nothing(
    make_repo: MakeRepo, git_root: Path, open_source: OpenSource
) -> None:
    repo = make_repo({"team/numpy.yaml": NUMPY})
    source = open_source(str(git_root / "envs"))
    source.read()
    repo.commit({"team/numpy.yaml": None}, "remove everything")
    snap = source.read()

    assert (snap.error, snap.envs, snap.rejections, snap.revision) == (None, (), (), repo.head())
    recorded = {EnvRef("team", "numpy"): RecordedEnv(EnvRef("team", "numpy"), "envs", "hash")}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    guarded = Settings(prune=True, sources=(SourceSettings(name="envs", git="x"),))
    allowed = Settings(prune=True, sources=(SourceSettings(name="envs", git="x", allow_empty=True),))
    assert plan([snap], recorded, policy=policy_of(guarded), now=now).by_kind(RETIRE) == ()
    assert len(plan([snap], recorded, policy=policy_of(allowed), now=now).by_kind(RETIRE)) == 1


# --- history ------------------------------------------------------------------------------


def test_force_push_and_rewritten_history_read_the_new_tree_in_full(
    remote: str, make_repo: MakeRepo, open_source: OpenSource, caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repo({"team/numpy.yaml": NUMPY})
    first = repo.head()
    repo.commit({"team/pandas.yaml": PANDAS})
    source = open_source(f"{remote}/envs")
    assert set(refs(source.read())) == {"team/numpy", "team/pandas"}

    with caplog.at_level(logging.INFO, logger=LOGGER):
        repo.reset_hard(first)  # force-push back to an older commit
        back = source.read()
        rewritten = repo.orphan_commit({"other/scipy.yaml": SCIPY})  # history replaced
        new = source.read()

    assert (back.revision, set(refs(back))) == (first, {"team/numpy"})
    assert (new.revision, set(refs(new))) == (rewritten, {"other/scipy"})
    assert len(messages(caplog, "git_history_rewritten")) == 2
    assert all("mode=full" in m for m in messages(caplog, "git_read"))


def test_a_deleted_branch_is_an_error_until_it_is_back(
    remote: str, make_repo: MakeRepo, open_source: OpenSource
) -> None:
    repo = make_repo({"team/numpy.yaml": NUMPY})
    source = open_source(f"{remote}/envs")
    good = source.read()
    repo.git("branch", "-m", "main", "renamed")
    gone = source.read()

    assert gone.error_reason == "SourceBranchMissing" and gone.envs == ()
    assert "branch 'main' does not exist" in str(gone.error)
    repo.git("branch", "-m", "renamed", "main")
    assert source.read() == good


# --- failures and backoff -----------------------------------------------------------------


def test_an_unreachable_remote_backs_off_then_recovers(
    make_repo: MakeRepo,
    git_root: Path,
    open_source: OpenSource,
    clock: Clock[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_repo({"team/numpy.yaml": NUMPY})
    port = free_port()
    source = open_source(f"git://127.0.0.1:{port}/envs", interval=10.0)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        first = source.read()
        attempts = [clock.now]
        for _ in range(60):  # ten minutes of polls every ten seconds
            clock.advance(10)
            source.read()
            if len(messages(caplog, "git_source_failed")) > len(attempts):
                attempts.append(clock.now)

    assert first.error_reason == "SourceUnreachable" and first.revision is None
    assert "next attempt in 10s" in str(first.error)
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[:5] == [10, 20, 40, 80, 80]  # doubling, capped at 8 intervals
    assert source.read(force=True).error_reason == "SourceUnreachable"  # force: tried at once
    assert len(messages(caplog, "git_source_failed")) == len(attempts) + 1

    with serve_git_daemon(git_root, port=port):
        clock.advance(80)
        assert refs(source.read()) == {"team/numpy": "team/numpy.yaml"}
        clock.advance(10)
        assert source.read().error is None  # the failure count was reset


def test_a_path_that_is_not_a_repository_is_unreachable(tmp_path: Path, open_source: OpenSource) -> None:
    require_git()
    snap = open_source(str(tmp_path / "nothing-here")).read()
    assert snap.error_reason == "SourceUnreachable" and "nothing-here" in str(snap.error)


def test_a_broken_mirror_is_made_again(remote: str, make_repo: MakeRepo, open_source: OpenSource) -> None:
    repo = make_repo({"team/numpy.yaml": NUMPY})
    source = open_source(f"{remote}/envs")
    source.read()
    source.close()
    objects = source.mirror_path / "objects"
    for lost in [*(objects / "pack").iterdir(), *(objects / "info").iterdir()]:  # packs, alternates
        lost.unlink()
    repo.commit({"team/pandas.yaml": PANDAS})

    assert set(refs(source.read())) == {"team/numpy", "team/pandas"}


def test_an_unwritable_mirror_folder_is_reported_as_such(make_repo: MakeRepo, git_root: Path, tmp_path: Path) -> None:
    make_repo({"team/numpy.yaml": NUMPY})
    not_a_folder = tmp_path / "cache-is-a-file"
    not_a_folder.write_text("")
    settings = SourceSettings(name="envs", git=str(git_root / "envs"))
    with GitSource(settings, cache_dir=not_a_folder) as source:
        snap = source.read()
    assert snap.error_reason == "SourceUnreadable" and "the local mirror cannot be written" in str(snap.error)


def test_many_fetches_keep_few_packs(make_repo: MakeRepo, git_root: Path, open_source: OpenSource) -> None:
    repo = make_repo({"team/numpy.yaml": NUMPY})
    with serve_git_daemon(git_root) as url:
        source = open_source(f"{url}/envs")
        for i in range(MAX_PACKS + 6):
            repo.commit({f"team/env{i}.yaml": SCIPY})
            assert len(source.read().envs) == i + 2
    source.close()
    packs = list((source.mirror_path / "objects" / "pack").glob("*.pack"))
    assert len(packs) <= MAX_PACKS
    done = subprocess.run(
        [require_git(), "fsck", "--no-progress"], cwd=source.mirror_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


# --- tree entries -------------------------------------------------------------------------


def test_links_submodules_and_unsafe_names_are_ignored_with_a_warning(
    remote: str, make_repo: MakeRepo, open_source: OpenSource, caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repo({"team/numpy.yaml": NUMPY, "docs/guide.md": "text"})
    repo.commit(symlinks={"team/linked.yaml": "numpy.yaml", "shared": "team", "docs/latest.md": "guide.md"})
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{repo.head()},vendor")
    repo.git("commit", "-q", "-m", "submodule")
    plain = repo.head()
    repo.write({"team/pandas.yaml": PANDAS})
    repo.git("add", "team/pandas.yaml")  # not -A: that would drop the submodule (no folder for it)
    repo.git("commit", "-q", "-m", "pandas")
    with_pandas = repo.head()
    blob = repo.blob(NUMPY.encode())
    inner = repo.raw_tree([("100644", b"evil.yaml", blob)])

    def with_unsafe_names(commit: str) -> str:  # what no git checkout could write
        listed = [line.split(maxsplit=3) for line in repo.git("ls-tree", commit).splitlines()]
        entries = [(mode, name.encode(), sha) for mode, _, sha, name in listed]
        entries += [("40000", b"..", inner), ("100644", b"a\\b.yaml", blob)]
        return repo.raw_tree(sorted(entries, key=lambda e: e[1]))

    first = repo.commit_tree(with_unsafe_names(plain))
    source = open_source(f"{remote}/envs")
    snap = source.read()

    assert snap.revision == first and snap.error is None and refs(snap) == {"team/numpy": "team/numpy.yaml"}
    assert reasons(snap) == {
        "..": UNSUPPORTED_TREE_ENTRY,
        "a\\b.yaml": UNSUPPORTED_TREE_ENTRY,
        "shared": UNSUPPORTED_TREE_ENTRY,
        "team/linked.yaml": UNSUPPORTED_TREE_ENTRY,
        "vendor": UNSUPPORTED_TREE_ENTRY,
    }
    assert all(r.ref is None and f"{r.path}" in r.message for r in snap.rejections)

    second = repo.commit_tree(with_unsafe_names(with_pandas))  # an ordinary change on top
    with caplog.at_level(logging.INFO, logger=LOGGER):
        snap = source.read()
    assert snap.revision == second and set(refs(snap)) == {"team/numpy", "team/pandas"}
    assert set(reasons(snap)) == {"..", "a\\b.yaml", "shared", "team/linked.yaml", "vendor"}
    assert any("mode=incremental" in m for m in messages(caplog, "git_read"))


def test_oversized_specs_are_refused_from_their_header(
    remote: str, make_repo: MakeRepo, open_source: OpenSource
) -> None:
    big = NUMPY + "# " + "x" * MAX_SPEC_BYTES + "\n"
    repo = make_repo({"team/big.yaml": big, "team/numpy.yaml": NUMPY})
    repo.commit({"team/big.yaml": big + "# one more line\n"})  # a delta against the first
    source = open_source(f"{remote}/envs")
    snap = source.read()

    assert reasons(snap) == {"team/big.yaml": "SpecTooLarge"}
    assert "over the 1048576 byte limit" in snap.rejections[0].message
    assert source.parsed_blobs == 2  # numpy.yaml, and big.yaml's outcome from its size


def test_blob_sizes_read_from_headers_match_the_content(make_repo: MakeRepo, git_root: Path) -> None:
    repo = make_repo({"a.yaml": "a" * 5000, "b.yaml": "small"})
    for i in range(3):
        repo.commit({"a.yaml": "a" * 5000 + f"edit {i}\n" * (i + 1)})
    repo.git("gc", "-q", "--aggressive")  # deltas (OFS_DELTA) in one pack
    repo.commit({"loose.yaml": "still a loose object"})
    with contextlib.closing(Repo(str(git_root / "envs"))) as git:
        store = git.object_store
        blobs = [sha for sha in store if store.get_raw(sha)[0] == 3]
        sizes = {sha: blob_size(store, sha) for sha in blobs}
        assert sizes == {sha: len(store.get_raw(sha)[1]) for sha in blobs}
        assert len(blobs) >= 6


# --- credentials --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["password_env", "password_file", "url"])
def test_https_credentials_from_env_file_or_url_never_show(
    how: str,
    tmp_path: Path,
    make_repo: MakeRepo,
    git_root: Path,
    open_source: OpenSource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_repo({"team/numpy.yaml": NUMPY})
    secret_file = tmp_path / "token"
    with serve_git_http(git_root, auth=("robot", TOKEN)) as url, caplog.at_level(logging.DEBUG):
        location, environ, keys = f"{url}/envs", {}, {"username": "robot"}
        if how == "password_env":
            environ, keys["password_env"] = {"GIT_TOKEN": TOKEN}, "GIT_TOKEN"
        elif how == "password_file":
            secret_file.write_text(TOKEN + "\n")
            keys["password_file"] = secret_file
        else:
            location, keys = url.replace("http://", f"http://robot:{TOKEN}@") + "/envs", {}
        good = open_source(location, environ=environ, **keys).read()
        if how == "url":
            refused = open_source(location.replace(TOKEN, TOKEN + "-wrong"), name="bad").read()
        else:
            environ = {"GIT_TOKEN": TOKEN + "-wrong"}
            secret_file.write_text(TOKEN + "-wrong")
            refused = open_source(f"{url}/envs", name="bad", environ=environ, **keys).read()

    assert good.error is None and refs(good) == {"team/numpy": "team/numpy.yaml"}
    assert refused.error_reason == "SourceAuthFailed"
    assert TOKEN not in str(refused) and TOKEN not in str(good)
    assert TOKEN not in caplog.text and "robot:" not in caplog.text
    assert "git_source_failed" in caplog.text  # the failure was logged, redacted


def test_missing_credentials_name_the_variable_or_file(
    tmp_path: Path, make_repo: MakeRepo, git_root: Path, open_source: OpenSource
) -> None:
    make_repo({"team/numpy.yaml": NUMPY})
    with serve_git_http(git_root, auth=("robot", TOKEN)) as url:
        unset = open_source(f"{url}/envs", password_env="GIT_TOKEN").read()
        no_file = open_source(f"{url}/envs", name="b", password_file=tmp_path / "absent").read()
        anonymous = open_source(f"{url}/envs", name="c").read()

    assert unset.error_reason == "SourceAuthFailed" and "GIT_TOKEN" in str(unset.error)
    assert no_file.error_reason == "SourceAuthFailed" and "absent" in str(no_file.error)
    assert anonymous.error_reason == "SourceAuthFailed"


def test_ssh_with_a_key_and_known_hosts(
    tmp_path: Path, make_repo: MakeRepo, git_root: Path, open_source: OpenSource
) -> None:
    make_repo({"team/numpy.yaml": NUMPY})
    with serve_git_ssh(tmp_path / "ssh") as server:
        url = server.url(git_root / "envs")
        good = open_source(url, ssh_key_file=server.key, ssh_known_hosts=server.known_hosts).read()
        other_hosts = tmp_path / "other_known_hosts"
        other_hosts.write_text(server.known_hosts.read_text().replace("127.0.0.1", "127.0.0.2"))
        unknown_host = open_source(url, name="b", ssh_key_file=server.key, ssh_known_hosts=other_hosts).read()

    assert good.error is None and refs(good) == {"team/numpy": "team/numpy.yaml"}
    assert unknown_host.error_reason == "SourceAuthFailed", unknown_host.error


# --- change requests ----------------------------------------------------------------------


def test_pull_request_refs_are_listed_and_read(remote: str, make_repo: MakeRepo, open_source: OpenSource) -> None:
    repo = make_repo({"team/numpy.yaml": NUMPY})
    main = repo.head()
    pr1 = repo.commit({"team/pandas.yaml": PANDAS}, "PR 1")
    repo.update_ref("refs/pull/1/head", pr1)
    repo.reset_hard(main)
    pr2 = repo.commit({"team/numpy.yaml": None, "team/scipy.yaml": SCIPY}, "PR 2")
    repo.update_ref("refs/pull/2/head", pr2)
    repo.update_ref("refs/merge-requests/3/head", pr2)
    repo.reset_hard(main)
    source = open_source(f"{remote}/envs")
    branch = source.read()

    assert source.list_refs(["refs/pull/*/head"]) == {"refs/pull/1/head": pr1, "refs/pull/2/head": pr2}
    assert set(source.list_refs(["refs/pull/*/head", "refs/merge-requests/*/head"])) == {
        "refs/pull/1/head",
        "refs/pull/2/head",
        "refs/merge-requests/3/head",
    }
    one, two = source.read_ref("refs/pull/1/head"), source.read_ref("refs/pull/2/head")
    assert (one.revision, set(refs(one))) == (pr1, {"team/numpy", "team/pandas"})
    assert (two.revision, set(refs(two))) == (pr2, {"team/scipy"})
    assert source.read() is branch  # reading refs leaves the branch state alone
    missing = source.read_ref("refs/pull/9/head")
    assert missing.error_reason == "SourceRefMissing"
    with pytest.raises(ValueError, match="must start with 'refs/'"):
        source.list_refs(["pull/*"])


# --- wiring -------------------------------------------------------------------------------


def test_the_service_reader_keeps_one_git_source_per_name(
    tmp_path: Path, make_repo: MakeRepo, git_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repo({"team/numpy.yaml": NUMPY})
    settings = SourceSettings(name="envs", git=str(git_root / "envs"), mirror_dir=tmp_path / "mirrors")
    reader = SourceReader()
    first = reader(settings)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert reader(settings) is first
    assert messages(caplog, "git_fetched") == []
    assert (tmp_path / "mirrors" / "envs.git").is_dir()

    repo.commit({"team/pandas.yaml": PANDAS})
    assert set(refs(read_source(settings))) == {"team/numpy", "team/pandas"}
    hand_made = SourceSettings(name="other", git=str(git_root / "envs"))  # no mirror_dir
    assert set(refs(reader(hand_made))) == {"team/numpy", "team/pandas"}


def test_load_settings_puts_git_mirrors_in_the_store(tmp_path: Path) -> None:
    from condaops.config import load_settings

    (tmp_path / "condaops.yaml").write_text(
        "store: data\nsources:\n  - git: https://example.org/envs.git\n  - directory: local-envs\n"
    )
    settings = load_settings(tmp_path / "condaops.yaml", environ={}, cwd=tmp_path)
    assert settings.sources[0].mirror_dir == tmp_path / "data" / ".cache" / "git"
    assert settings.sources[1].mirror_dir is None


def test_the_mirror_is_a_plain_bare_repository(make_repo: MakeRepo, git_root: Path, open_source: OpenSource) -> None:
    repo = make_repo({"team/numpy.yaml": NUMPY})
    source = open_source(str(git_root / "envs"))
    source.read()
    source.close()

    def git(*args: str) -> str:
        return subprocess.run(
            [require_git(), *args], cwd=source.mirror_path, capture_output=True, text=True, check=True
        ).stdout.strip()

    assert git("rev-parse", "--is-bare-repository") == "true"
    assert git("rev-parse", "refs/heads/main") == repo.head()
    assert git("fsck", "--no-progress") == ""
