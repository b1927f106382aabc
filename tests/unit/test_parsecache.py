"""Parse results kept on disk by content (``sources.parsecache``): a fresh reader takes
them instead of parsing, gets the same snapshot, and parses exactly what changed."""

from __future__ import annotations

import json
from pathlib import Path

from condaops.config.settings import SourceSettings
from condaops.reconciler.sources import parsecache
from condaops.reconciler.sources.reader import SourceReader

FILES = {
    "team/plain.yaml": "channels: [conda-forge]\ndependencies:\n  - python=3.12\n  - numpy>=1.26\n",
    "team/rich.yaml": (
        "name: rich\nprefix: /opt/x\nchannels:\n  - conda-forge\n  - bioconda\n"
        "dependencies:\n  - python=3.11\n  - libgcc-ng  # [linux64]\n  - pip\n"
        "  - pip:\n    - requests>=2\nvariables:\n  A: '1'\nplatforms: [linux-64, osx-arm64]\n"
        "condaops:\n  display_name: Rich Env\n"
    ),
    "lab/folder/environment.yaml": "dependencies:\n  - zlib\n",
    "lab/broken.yaml": "dependencies:\n  - python=3.12\n  - python=3.12\ndependencies: []\n",
    "lab/templated.yaml": "dependencies:\n  - {{ pkg }}\n",
}


def tree(tmp_path: Path) -> SourceSettings:
    root = tmp_path / "envs"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return SourceSettings(name="envs", directory=root)


def test_a_fresh_reader_takes_the_kept_results_and_gets_the_same_snapshot(tmp_path: Path) -> None:
    src = tree(tmp_path)
    kept = tmp_path / "cache"
    first = SourceReader(parse_cache=kept)
    snap = first(src)
    assert first._caches["envs"].parsed == len(FILES)  # type: ignore[attr-defined]
    assert len(snap.envs) == 3 and len(snap.rejections) == 2
    assert [p.name for p in kept.iterdir()] == [parsecache.cache_file(kept, "envs").name]

    again = SourceReader(parse_cache=kept, save_parses=False)
    same = again(src)
    assert again._caches["envs"].parsed == 0  # type: ignore[attr-defined]  # nothing parsed
    assert same == snap
    for a, b in zip(same.envs, snap.envs, strict=True):  # the fields equality leaves out, too
        assert (a.spec.name, a.spec.display_name, a.warnings) == (b.spec.name, b.spec.display_name, b.warnings)
    assert [(r.reason, r.message) for r in same.rejections] == [(r.reason, r.message) for r in snap.rejections]

    (Path(src.directory) / "team/plain.yaml").write_text(FILES["team/plain.yaml"] + "  - scipy\n")  # type: ignore[arg-type]
    changed = SourceReader(parse_cache=kept, save_parses=False)
    after = changed(src)
    assert changed._caches["envs"].parsed == 1  # type: ignore[attr-defined]  # only the changed file
    plain = {str(e.ref): e for e in after.envs}["team/plain"]
    assert "scipy" in [d.text for d in plain.spec.dependencies]
    assert SourceReader()(src) == after  # the same as parsing everything


def test_results_of_another_parser_or_a_broken_file_are_ignored(tmp_path: Path) -> None:
    src = tree(tmp_path)
    kept = tmp_path / "cache"
    snap = SourceReader(parse_cache=kept)(src)
    path = parsecache.cache_file(kept, "envs")
    data = json.loads(path.read_text())
    data["fingerprint"] = "another parser"
    path.write_text(json.dumps(data))
    other = SourceReader(parse_cache=kept, save_parses=False)
    assert other(src) == snap and other._caches["envs"].parsed == len(FILES)  # type: ignore[attr-defined]
    path.write_text("{not json")
    broken = SourceReader(parse_cache=kept, save_parses=False)
    assert broken(src) == snap and broken._caches["envs"].parsed == len(FILES)  # type: ignore[attr-defined]
    assert path.read_text() == "{not json"  # a reader that does not save writes nothing


def test_a_store_that_cannot_be_written_loses_nothing(tmp_path: Path) -> None:
    src = tree(tmp_path)
    blocked = tmp_path / "file"
    blocked.write_text("")
    reader = SourceReader(parse_cache=blocked / "cache")  # a folder under a file: never writable
    assert len(reader(src).envs) == 3


def test_the_fingerprint_names_the_installed_parser_libraries() -> None:
    """Read from the ``.dist-info`` folders (no ``importlib.metadata`` import), equal to
    what ``importlib.metadata`` says; a module that is not installed counts as ``?``."""
    from importlib.metadata import version

    for module, dist in parsecache.PARSER_LIBRARIES.items():
        found = parsecache._installed(module, dist)
        assert found.lower() == f"{dist}-{version(dist)}".lower()
    assert parsecache._installed("condaops_no_such_module", "nothing") == "?"
    assert parsecache.fingerprint() == parsecache.fingerprint()
