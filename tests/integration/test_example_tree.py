"""environments.example/ stays a valid, buildable GitOps tree."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from condaops.config import load_settings
from condaops.reconciler.service import Reconciler
from condaops.reconciler.state.db import make_engine, migrate

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_tree_plans_four_valid_environments(tmp_path):
    settings = load_settings(
        ROOT / "environments.example" / "condaops.yaml", environ={"CONDAOPS_STORE": str(tmp_path / "store")}
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    plan = Reconciler(settings, engine, clock=lambda: datetime.now(timezone.utc)).plan()
    assert {(str(a.ref), a.kind, a.reason) for a in plan.actions} == {
        ("shared/sqlite", "build", "NewEnvironment"),
        ("tools/compression", "build", "NewEnvironment"),
        ("tools/crypto", "build", "NewEnvironment"),
        ("web/flask", "build", "NewEnvironment"),
    }
    assert not plan.unnamed_rejections and not plan.notes
