"""Tests that need something outside the project: skip here, fail on CI.

Outside CI a missing tool, service or data set skips the test with a reason that says
what to install; with ``CI=true`` (``.ci/run``) the same test fails, so nothing is
silently skipped there.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def on_ci() -> bool:
    """Whether this run is CI's (``CI=true``), where every external tool must be present."""
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test (``reason`` says what is missing and how to get it); fail on CI."""
    if on_ci():
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(reason)
