"""Layout rules: which relative path is which environment (pure, no IO)."""

from __future__ import annotations

import pytest

from condaops.reconciler.lockfiles import LOCK_AMBIGUOUS, LOCK_WITHOUT_SPEC
from condaops.reconciler.model import EnvRef
from condaops.reconciler.names import shown
from condaops.reconciler.sources.layout import (
    DUPLICATE_ENVIRONMENT,
    INVALID_NAME,
    LAYOUT_UNSUPPORTED,
    LockPlacement,
    Misplaced,
    Placement,
    affects_layout,
    arrange,
    classify,
    classify_lock,
    is_ignored_name,
    pair_locks,
    policy_scope,
)

DEFAULT = "main"

PLACED = [
    ("root-yaml", "numpy.yaml", "main/numpy"),
    ("root-yml", "numpy.yml", "main/numpy"),
    ("root-dotted-stem", "py3.11.yaml", "main/py3.11"),
    ("ns-file", "team/numpy.yaml", "team/numpy"),
    ("ns-file-yml", "team/numpy.yml", "team/numpy"),
    ("ns-folder", "team/numpy/environment.yaml", "team/numpy"),
    ("ns-folder-yml", "team/numpy/environment.yml", "team/numpy"),
    ("top-folder-is-default-ns", "numpy/environment.yaml", "main/numpy"),
    ("top-folder-yml", "numpy/environment.yml", "main/numpy"),
    ("ns-named-like-default", "main/numpy.yaml", "main/numpy"),
]


@pytest.mark.parametrize(("path", "ref"), [p[1:] for p in PLACED], ids=[p[0] for p in PLACED])
def test_placed(path: str, ref: str) -> None:
    assert classify(path, default_namespace=DEFAULT) == Placement(EnvRef.parse(ref), path)


IGNORED = [
    ("non-yaml", "team/notes.txt"),
    ("json", "team/env.json"),
    ("uppercase-suffix", "team/env.YAML"),
    ("readme-md", "README.md"),
    ("readme-yaml", "team/readme.yaml"),
    ("condaops-config", "condaops.yaml"),
    ("condaops-config-in-ns", "team/condaops.yml"),
    ("hidden-file", ".numpy.yaml"),
    ("git-dir", ".git/config.yaml"),
    ("github-dir", ".github/workflows/ci.yml"),
    ("hidden-ns", ".team/numpy.yaml"),
    ("vim-swap", "team/.numpy.yaml.swp"),
    ("vim-swx", "team/.numpy.yaml.swx"),
    ("vim-probe", "team/4913"),
    ("backup-tilde", "team/numpy.yaml~"),
    ("emacs-lock", "team/.#numpy.yaml"),
    ("emacs-autosave", "team/#numpy.yaml#"),
    ("tmp", "team/numpy.yaml.tmp"),
    ("tmp-yaml-named", "team/numpy.tmp"),
    ("part", "team/numpy.yaml.part"),
    ("orig", "team/numpy.yaml.orig"),
    ("rej", "team/numpy.yaml.rej"),
    ("bak", "team/numpy.yaml.bak"),
    ("conda-lock", "team/numpy/conda-lock.yml"),
    ("named-conda-lock", "team/numpy.conda-lock.yml"),
    ("companion-in-env-folder", "team/numpy/notes.yaml"),
    ("too-deep-non-env", "a/b/c/d.yaml"),
    ("deeper-than-max", "a/b/c/d/environment.yaml"),
]


@pytest.mark.parametrize("path", [p[1] for p in IGNORED], ids=[p[0] for p in IGNORED])
def test_ignored(path: str) -> None:
    assert classify(path, default_namespace=DEFAULT) is None


REJECTED = [
    ("env-file-in-root", "environment.yaml", LAYOUT_UNSUPPORTED, "no environment name"),
    ("env-file-in-root-yml", "environment.yml", LAYOUT_UNSUPPORTED, "no environment name"),
    ("env-file-too-deep", "team/sub/numpy/environment.yaml", LAYOUT_UNSUPPORTED, "nested too deep"),
    ("space-in-name", "team/my env.yaml", INVALID_NAME, "environment name 'my env'"),
    ("space-in-ns", "my team/numpy.yaml", INVALID_NAME, "namespace 'my team'"),
    ("leading-dash", "team/-x.yaml", INVALID_NAME, "'-x'"),
    ("double-dot", "team/a..b.yaml", INVALID_NAME, "'..'"),
    ("unicode", "team/numpŷ.yaml", INVALID_NAME, "numpŷ"),
    ("folder-name", "team/bad name/environment.yaml", INVALID_NAME, "'bad name'"),
    ("root-name", "bad name.yaml", INVALID_NAME, "'bad name'"),
    ("too-long", "team/" + "x" * 129 + ".yaml", INVALID_NAME, "at most 128"),
    # the names the hardening issue found vanishing
    ("issue-double-dot", "a..b.yaml", INVALID_NAME, "'..' and empty names are refused"),
    ("issue-dot-dot-yaml", "..yaml", INVALID_NAME, "'.' is not allowed as a name"),
    ("issue-dots-folder", "..team/x.yaml", INVALID_NAME, "namespace '..team'"),
    ("issue-upper-spaces", "UPPER Case name.yaml", INVALID_NAME, "use letters, digits, '.', '_' or '-'"),
    ("issue-251", "y" * 246 + ".yaml", INVALID_NAME, "(at most 128 characters)"),
    ("issue-rlo", "a\u202eb.yaml", INVALID_NAME, "'a\\u202eb' is not a valid name"),
    ("issue-zero-width", "a\u200bb.yaml", INVALID_NAME, "'a\\u200bb' is not a valid name"),
]


@pytest.mark.parametrize(("path", "reason", "words"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_rejected(path: str, reason: str, words: str) -> None:
    found = classify(path, default_namespace=DEFAULT)
    assert isinstance(found, Misplaced)
    assert (found.ref, found.path, found.reason) == (None, path, reason)
    assert shown(path) in found.message and words in found.message
    assert found.message.isprintable() and len(found.message) < 600  # safe to print, never a flood


DUPLICATES = [
    ("yaml-and-yml", ["team/a.yaml", "team/a.yml"]),
    ("file-and-folder", ["team/a.yaml", "team/a/environment.yaml"]),
    ("folder-yaml-and-yml", ["team/a/environment.yaml", "team/a/environment.yml"]),
    ("root-and-default-ns", ["a.yaml", "main/a.yaml"]),
    ("root-and-top-folder", ["a.yaml", "a/environment.yml"]),
    ("three-ways", ["a.yaml", "a/environment.yml", "main/a/environment.yaml"]),
]


@pytest.mark.parametrize("files", [d[1] for d in DUPLICATES], ids=[d[0] for d in DUPLICATES])
def test_duplicates_reject_every_file(files: list[str]) -> None:
    layout = arrange([*files, "team/other.yaml"], source="src", default_namespace=DEFAULT)
    assert [str(p.ref) for p in layout.placements] == ["team/other"]
    (rejection,) = layout.rejections
    assert rejection.reason == DUPLICATE_ENVIRONMENT
    assert rejection.source == "src" and rejection.path == sorted(files)[0]
    assert all(f in rejection.message for f in files)
    assert sorted(p.path for p in layout.duplicates) == sorted(files)


def test_arrange_sorts_and_keeps_layout_rejections() -> None:
    layout = arrange(
        ["b/x.yaml", "a.yaml", "environment.yaml", "README.md", "a/b/c.yaml"],
        source="src",
        default_namespace=DEFAULT,
    )
    assert [(str(p.ref), p.path) for p in layout.placements] == [("b/x", "b/x.yaml"), ("main/a", "a.yaml")]
    assert [(r.path, r.reason) for r in layout.rejections] == [("environment.yaml", LAYOUT_UNSUPPORTED)]


NAMES = [
    ("plain", "numpy.yaml", False),
    ("hidden", ".hidden", True),
    ("readme-upper", "README", True),
    ("readme-rst", "Readme.rst", True),
    ("swap", ".x.swp", True),
    ("vim-probe", "4913", True),
    ("not-vim-probe", "49130.yaml", False),
    ("hash-not-autosave", "#x.yaml", False),
]


@pytest.mark.parametrize(("name", "ignored"), [n[1:] for n in NAMES], ids=[n[0] for n in NAMES])
def test_is_ignored_name(name: str, ignored: bool) -> None:
    assert is_ignored_name(name) is ignored


CHANGES = [
    ("root-itself", ".", "gone", True),
    ("env-file", "team/a.yaml", "file", True),
    ("env-folder-file", "team/a/environment.yml", "file", True),
    ("rejected-file-counts", "environment.yaml", "file", True),
    ("companion", "team/a/notes.yaml", "file", False),
    ("swap", "team/.a.yaml.swp", "file", False),
    ("readme", "README.md", "file", False),
    ("inside-git", ".git/index", "file", False),
    ("new-namespace-folder", "team", "dir", True),
    ("new-env-folder", "team/a", "dir", True),
    ("deep-folder", "team/a/sub", "dir", True),
    ("too-deep-folder", "team/a/sub/more", "dir", False),
    ("hidden-folder", ".github", "dir", False),
    ("gone-maybe-folder", "team", "gone", True),
    ("gone-env-file", "team/a.yaml", "gone", True),
    ("gone-swap", "team/.a.yaml.swp", "gone", False),
]


@pytest.mark.parametrize(("path", "kind", "relevant"), [c[1:] for c in CHANGES], ids=[c[0] for c in CHANGES])
def test_affects_layout(path: str, kind: str, relevant: bool) -> None:
    assert affects_layout(path, kind=kind) is relevant  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("condaops-policy.yaml", ""),
        ("condaops-policy.yml", ""),
        ("science/condaops-policy.yaml", "science"),
        ("science/ml/condaops-policy.yaml", None),  # inside an environment folder: not a policy file
        ("science/condaops-policy.json", None),
        (".hidden/condaops-policy.yaml", None),
        ("science/tools.yaml", None),
    ],
)
def test_policy_files_are_never_environments(path: str, scope: str | None) -> None:
    assert policy_scope(path) == scope
    if scope is not None:
        assert classify(path, default_namespace=DEFAULT) is None
        assert affects_layout(path, kind="file")  # the watcher re-reads the source when one changes


LOCKS = [
    ("named-beside-ns-file", "team/app.conda-lock.yml", "team/app", "conda-lock"),
    ("named-yaml-suffix", "team/app.conda-lock.yaml", "team/app", "conda-lock"),
    ("pixi-named", "team/app.pixi.lock", "team/app", "pixi-lock"),
    ("root-named", "app.conda-lock.yml", "main/app", "conda-lock"),
    ("in-env-folder", "team/app/conda-lock.yml", "team/app", "conda-lock"),
    ("pixi-in-env-folder", "team/app/pixi.lock", "team/app", "pixi-lock"),
    ("in-top-folder", "app/pixi.lock", "main/app", "pixi-lock"),
]


@pytest.mark.parametrize(("path", "ref", "kind"), [c[1:] for c in LOCKS], ids=[c[0] for c in LOCKS])
def test_lock_placed(path: str, ref: str, kind: str) -> None:
    assert classify_lock(path, default_namespace=DEFAULT) == LockPlacement(EnvRef.parse(ref), path, kind)


@pytest.mark.parametrize(
    "path",
    ["team/app.yaml", "team/app/extra.conda-lock.yml", "a/b/c/conda-lock.yml", ".hidden/conda-lock.yml", "x.lock"],
    ids=["spec", "companion", "too-deep", "hidden", "other-lock"],
)
def test_not_a_lock(path: str) -> None:
    assert classify_lock(path, default_namespace=DEFAULT) is None


def test_lock_in_root_locks_nothing() -> None:
    found = classify_lock("conda-lock.yml", default_namespace=DEFAULT)
    assert isinstance(found, Misplaced) and found.reason == LOCK_WITHOUT_SPEC
    assert "<name>.conda-lock.yml" in found.message


def test_pair_locks() -> None:
    envs = [EnvRef("team", "app"), EnvRef("team", "both"), EnvRef("main", "free")]
    paths = ["team/app.conda-lock.yml", "team/both.conda-lock.yml", "team/both/pixi.lock", "team/gone.pixi.lock"]
    pairs, rejections = pair_locks(paths, envs, source="src", default_namespace=DEFAULT)
    assert pairs == {EnvRef("team", "app"): LockPlacement(EnvRef("team", "app"), paths[0], "conda-lock")}
    assert [(r.ref, r.path, r.reason) for r in rejections] == [
        (None, "team/gone.pixi.lock", LOCK_WITHOUT_SPEC),
        (EnvRef("team", "both"), "team/both.conda-lock.yml", LOCK_AMBIGUOUS),
    ]
    assert "team/gone.yaml" in rejections[0].message
    assert "team/both.conda-lock.yml and team/both/pixi.lock" in rejections[1].message


@pytest.mark.parametrize(
    ("path", "kind", "relevant"),
    [("team/app.conda-lock.yml", "file", True), ("team/app/pixi.lock", "gone", True), ("team/x.lock", "file", False)],
    ids=["named-lock", "folder-lock-gone", "other"],
)
def test_lock_changes_affect_layout(path: str, kind: str, relevant: bool) -> None:
    assert affects_layout(path, kind=kind) is relevant  # type: ignore[arg-type]
