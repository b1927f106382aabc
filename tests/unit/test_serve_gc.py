"""reconciler.runtime.freeze_startup_objects: what ``serve`` does to the garbage collector
once it is ready (in a fresh interpreter: it changes process-wide settings)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from condaops.reconciler.runtime import GC_THRESHOLDS, freeze_startup_objects
assert gc.get_freeze_count() == 0
freeze_startup_objects()
assert gc.get_threshold() == GC_THRESHOLDS, gc.get_threshold()
assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()  # the imports at least
print("ok")
"""


def test_startup_objects_are_frozen_and_young_collections_rarer() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
