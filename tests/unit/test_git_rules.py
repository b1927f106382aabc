"""Pure rules of the Git source (``gitrules``), its tree listing on in-memory object stores
(``gittree``: a full walk and an incremental update must always agree), and the
configuration keys Git sources add."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest
from dulwich.index import commit_tree
from dulwich.object_store import MemoryObjectStore
from dulwich.objects import Blob

from condaops.config import ConfigError, load_settings
from condaops.reconciler.names import ref_glob_problem
from condaops.reconciler.sources.gitrules import (
    MODE_SUBMODULE,
    MODE_SYMLINK,
    Candidate,
    Unsupported,
    glob_prefix,
    judge_path,
    matching_refs,
    may_retry,
    redact,
    retry_delay,
    split_userinfo,
)
from condaops.reconciler.sources.gittree import Listing, update_listing, walk_tree

FILE, EXEC, TREE = 0o100644, 0o100755, 0o040000


# --- tree entries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "mode", "expected"),
    [
        ("base.yaml", FILE, Candidate("base.yaml")),
        ("team/numpy.yml", EXEC, Candidate("team/numpy.yml")),
        ("team/pandas/environment.yaml", FILE, Candidate("team/pandas/environment.yaml")),
        ("a/b/c/environment.yaml", FILE, Candidate("a/b/c/environment.yaml")),
        ("a/b/c/d/e.yaml", FILE, None),
        ("team/notes.md", FILE, None),
        (".github/ci.yml", FILE, None),
        ("team/.env.yaml.swp", FILE, None),
        ("team/conda-lock.yml", FILE, Candidate("team/conda-lock.yml")),  # layout pairs it with its spec
        ("team/app.pixi.lock", FILE, Candidate("team/app.pixi.lock")),
        ("team/linked.yaml", MODE_SYMLINK, "link"),
        ("shared", MODE_SYMLINK, "link"),
        ("docs/latest.md", MODE_SYMLINK, None),
        ("a/b/c/d", MODE_SYMLINK, None),
        ("vendor", MODE_SUBMODULE, "submodule"),
        ("a/b/c/d", MODE_SUBMODULE, None),
        ("../evil.yaml", FILE, "unsafe:.."),
        ("team/./x.yaml", FILE, "unsafe:team/."),
        ("a\\b.yaml", FILE, "unsafe:a\\b.yaml"),
        ("nul\0.yaml", FILE, "unsafe:nul\0.yaml"),
        ("team//x.yaml", FILE, "unsafe:team/"),
        (b"caf\xe9.yaml".decode("utf-8", "surrogateescape"), FILE, "unsafe:caf\\xe9.yaml"),
        (".hidden/../x.yaml", FILE, None),  # hidden first: never looked into
        ("a/b/c/d/../x.yaml", FILE, None),  # too deep first: never looked into
    ],
    ids=[
        "root-file",
        "ns-file",
        "env-folder",
        "deepest-misplaced",
        "too-deep",
        "not-yaml",
        "hidden-folder",
        "swap-file",
        "lockfile",
        "pixi-lockfile",
        "link-spec",
        "link-folder",
        "link-other-file",
        "link-too-deep",
        "submodule",
        "submodule-too-deep",
        "dotdot",
        "dot",
        "backslash",
        "nul",
        "empty-component",
        "not-utf8",
        "hidden-before-unsafe",
        "deep-before-unsafe",
    ],
)
def test_judge_path(path: str, mode: int, expected: object) -> None:
    judged = judge_path(tuple(path.split("/")), mode)
    if isinstance(expected, str) and expected.startswith("unsafe:"):
        assert isinstance(judged, Unsupported) and judged.unsafe and judged.path == expected[7:]
    elif expected in ("link", "submodule"):
        assert isinstance(judged, Unsupported) and not judged.unsafe and judged.path == path
        assert f"is a {'symbolic link' if expected == 'link' else 'submodule'}" in judged.message
    else:
        assert judged == expected


def _tree(store: MemoryObjectStore, files: dict[str, tuple[int, bytes]]) -> bytes:
    blobs = []
    for path, (mode, content) in files.items():
        blob = Blob.from_string(content)
        store.add_object(blob)
        blobs.append((path.encode(), blob.id, mode))
    return commit_tree(store, blobs)


def _same(a: Listing, b: Listing) -> bool:
    return (a.files, a.unsupported) == (b.files, b.unsupported)


def test_incremental_listing_always_equals_a_full_walk() -> None:
    """Random edits (add, change, delete, links, deep and hidden paths) over many commits."""
    rng = random.Random(7)
    names = [
        "base.yaml",
        "team/a.yaml",
        "team/b.yml",
        "team/env/environment.yaml",
        "team/env/notes.yaml",
        "x/y/z/environment.yaml",
        "x/y/z/w/deep.yaml",
        ".github/ci.yml",
        "team/README.md",
        "shared",
        "solo/environment.yaml",
        "team/c.yaml",
    ]
    store = MemoryObjectStore()
    files: dict[str, tuple[int, bytes]] = {}
    old = _tree(store, files)
    listing = walk_tree(store, old)
    for step in range(200):
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(names)
            if name in files and rng.random() < 0.4:
                del files[name]
                continue
            if any(n.startswith(name + "/") or name.startswith(n + "/") for n in files if n != name):
                continue  # a file and a folder cannot share a path
            mode = MODE_SYMLINK if name == "shared" or rng.random() < 0.1 else FILE
            files[name] = (mode, f"dependencies: [pkg{rng.randint(0, 5)}]\n".encode())
        new = _tree(store, files)
        updated = update_listing(store, listing, old, new)
        assert updated is not None and _same(updated, walk_tree(store, new)), f"step {step}: {files}"
        listing, old = updated, new


def test_unsafe_names_make_the_update_ask_for_a_full_walk() -> None:
    store = MemoryObjectStore()
    blob = Blob.from_string(b"dependencies: [x]\n")
    store.add_object(blob)
    plain = _tree(store, {"team/a.yaml": (FILE, b"dependencies: [x]\n")})
    crafted = commit_tree(store, [(b"team/a.yaml", blob.id, FILE), (b"../evil.yaml", blob.id, FILE)])
    walked = walk_tree(store, crafted)

    assert update_listing(store, walk_tree(store, plain), plain, crafted) is None
    assert set(walked.files) == {"team/a.yaml"} and set(walked.unsupported) == {".."}


# --- refs ---------------------------------------------------------------------------------

REFS = {
    "refs/heads/main": "a" * 40,
    "refs/pull/1/head": "b" * 40,
    "refs/pull/1/merge": "c" * 40,
    "refs/pull/22/head": "d" * 40,
    "refs/merge-requests/3/head": "e" * 40,
    "refs/pullx/1/head": "f" * 40,
}


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["refs/pull/*/head"], ["refs/pull/1/head", "refs/pull/22/head"]),
        (["refs/pull/*"], ["refs/pull/1/head", "refs/pull/1/merge", "refs/pull/22/head"]),
        (
            ["refs/pull/*/head", "refs/merge-requests/*/head"],
            ["refs/merge-requests/3/head", "refs/pull/1/head", "refs/pull/22/head"],
        ),
        (["refs/heads/main"], ["refs/heads/main"]),
        (["refs/tags/*"], []),
    ],
    ids=["pull-heads", "pull-all", "two-forges", "literal", "none"],
)
def test_matching_refs(patterns: list[str], expected: list[str]) -> None:
    assert list(matching_refs(REFS, patterns)) == expected


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("refs/pull/*/head", None),
        ("pull/*/head", "must start with 'refs/'"),
        ("refs/a b", "cannot have"),
        ("refs/../x", "cannot have"),
        ("refs/x?", "cannot have"),
    ],
    ids=["ok", "no-refs", "space", "dotdot", "question-mark"],
)
def test_ref_glob_problem(pattern: str, problem: str | None) -> None:
    found = ref_glob_problem(pattern)
    assert (found is None) if problem is None else (problem in str(found))


def test_glob_prefix() -> None:
    assert glob_prefix("refs/pull/*/head") == "refs/pull/"
    assert glob_prefix("refs/heads/main") == "refs/heads/main"


# --- credentials --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("https://user:pa55w0rd@host/repo.git failed", [], "https://***@host/repo.git failed"),
        ("https://ghp_abcdef123456@github.com/o/r", [], "https://***@github.com/o/r"),
        ("HTTP://u:p@h/r", [], "HTTP://***@h/r"),
        ("ssh://git@host/repo.git", [], "ssh://git@host/repo.git"),
        ("ssh://git:hunter22@host/repo", [], "ssh://git:***@host/repo"),
        ("token tok-123456 in a message", ["tok-123456"], "token *** in a message"),
        ("a u in a sentence", ["u"], "a u in a sentence"),
        ("no credentials at https://host/x", [], "no credentials at https://host/x"),
    ],
    ids=[
        "user-password",
        "token-as-user",
        "upper-scheme",
        "ssh-user-kept",
        "ssh-password",
        "secret",
        "short-secret-ignored",
        "nothing",
    ],
)
def test_redact(text: str, secrets: list[str], expected: str) -> None:
    assert redact(text, secrets) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://host/repo.git", ("https://host/repo.git", None, None)),
        ("https://robot:t%40ken@host/r", ("https://host/r", "robot", "t@ken")),
        ("https://ghp_token@host/r", ("https://host/r", "ghp_token", None)),
        ("https://:secret@host/r", ("https://host/r", None, "secret")),
        ("git@github.com:org/envs.git", ("git@github.com:org/envs.git", None, None)),
    ],
    ids=["plain", "user-password-quoted", "token-user", "password-only", "scp-untouched"],
)
def test_split_userinfo(url: str, expected: tuple[str, str | None, str | None]) -> None:
    assert split_userinfo(url) == expected


# --- backoff ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(1, 60), (2, 120), (3, 240), (4, 480), (5, 480), (50, 480)],
    ids=["first", "second", "third", "fourth", "capped", "long-outage"],
)
def test_retry_delay_doubles_up_to_eight_intervals(failures: int, delay: float) -> None:
    assert retry_delay(failures, 60) == delay


@pytest.mark.parametrize(
    ("failures", "since", "allowed"),
    [(1, 59, True), (1, 29, False), (2, 90, True), (2, 89, False), (9, 450, True), (9, 449, False)],
    ids=["poll-a-little-early", "far-too-early", "second-on-time", "second-early", "capped", "capped-early"],
)
def test_may_retry_tolerates_half_an_interval_of_jitter(failures: int, since: float, allowed: bool) -> None:
    assert may_retry(failures, 60, since) is allowed


# --- configuration ------------------------------------------------------------------------


def _load(tmp_path: Path, sources: str) -> object:
    file = tmp_path / "condaops.yaml"
    file.write_text(textwrap.dedent(sources))
    return load_settings(file, environ={}, cwd=tmp_path)


def test_git_keys_are_accepted(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        """\
        sources:
          - {git: https://example.org/envs.git, username: robot, password_env: GIT_TOKEN, allow_empty: true}
          - {git: 'git@example.org:org/other.git', ssh_key_file: keys/id, ssh_known_hosts: keys/hosts}
          - {git: https://example.org/third.git, password_file: secrets/token, mirror_dir: /var/cache/git}
    """,
    )
    http, ssh, third = settings.sources  # type: ignore[attr-defined]
    assert (http.username, http.password_env, http.allow_empty) == ("robot", "GIT_TOKEN", True)
    assert (ssh.ssh_key_file, ssh.ssh_known_hosts) == (tmp_path / "keys/id", tmp_path / "keys/hosts")
    assert (third.password_file, third.mirror_dir) == (tmp_path / "secrets/token", Path("/var/cache/git"))
    assert http.mirror_dir == tmp_path / ".condaops" / ".cache" / "git"


@pytest.mark.parametrize(
    ("source", "key", "message"),
    [
        (
            "{git: 'git@h:o/r.git', password_env: TOKEN}",
            "sources[0].password_env",
            "applies only to Git sources with an http:// or https:// URL",
        ),
        ("{directory: envs, username: robot}", "sources[0].username", "applies only to Git sources with an http"),
        (
            "{git: https://h/r.git, ssh_key_file: id}",
            "sources[0].ssh_key_file",
            "applies only to Git sources with an ssh:// or user@host:path URL",
        ),
        ("{directory: envs, mirror_dir: m}", "sources[0].mirror_dir", "applies only to Git sources"),
        (
            "{git: https://h/r.git, password_env: T, password_file: f}",
            "sources[0].password_file",
            "set only one of 'password_env' and 'password_file'",
        ),
        (
            "{git: https://h/r.git, password_env: 'MY-TOKEN'}",
            "sources[0].password_env",
            "is not an environment variable name",
        ),
        ("{git: https://h/r.git, allow_empty: maybe}", "sources[0].allow_empty", "expected a boolean"),
    ],
    ids=[
        "password-over-ssh",
        "username-on-directory",
        "ssh-key-over-https",
        "mirror-on-directory",
        "two-secrets",
        "bad-variable-name",
        "allow-empty-not-bool",
    ],
)
def test_git_keys_where_they_do_not_apply_are_refused(tmp_path: Path, source: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, f"sources: [{source}]\n")
    assert f"key '{key}'" in str(caught.value) and message in str(caught.value)
