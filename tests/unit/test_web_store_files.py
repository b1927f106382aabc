"""web.store_files: locations recorded in the state DB never lead out of the store."""

from __future__ import annotations

from pathlib import Path

from condaops.config.settings import Settings
from condaops.reconciler.store import StoreLayout
from condaops.web.store_files import StoreFiles


def test_store_relative_paths_stay_in_the_store(tmp_path: Path) -> None:
    (tmp_path / "store" / "a").mkdir(parents=True)
    (tmp_path / "store" / "a" / "f.txt").write_text("x")
    (tmp_path / "secret.txt").write_text("no")
    (tmp_path / "store" / "link").symlink_to(tmp_path / "secret.txt")
    settings = Settings(store=tmp_path / "store")
    files = StoreFiles(settings, StoreLayout.of(settings))

    assert files.store_file("a/f.txt") == (tmp_path / "store" / "a" / "f.txt").resolve()
    for location in ("../secret.txt", "link", "a", "/etc/passwd", "a/../../secret.txt"):
        assert files.store_file(location) is None, location
