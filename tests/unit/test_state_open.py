"""Opening the state DB for reading: the cheap head revision matches Alembic's, and a
missing database is refused without creating anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from condaops.reconciler.state.db import MIGRATIONS, StateMissing, head_revision, open_existing


def test_head_revision_is_alembics_head() -> None:
    script = ScriptDirectory(str(MIGRATIONS))
    assert head_revision() == script.get_current_head()


def test_a_missing_sqlite_database_is_refused_and_not_created(tmp_path: Path) -> None:
    db = tmp_path / "store" / "condaops.db"
    with pytest.raises(StateMissing, match=f"no state database at sqlite:///{db}"):
        open_existing(f"sqlite:///{db}")
    assert not (tmp_path / "store").exists()
