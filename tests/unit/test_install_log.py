"""Download and install progress lines in the build log (reconciler.build.installlog)."""

from __future__ import annotations

import logging

import pytest

from condaops.reconciler.build.installlog import InstallLog
from tests.support.clock import Clock


def test_progress_lines_are_bounded_and_name_the_packages(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(0.0)
    log = logging.getLogger("test.installlog")
    reporter = InstallLog(log, clock=clock)

    with caplog.at_level(logging.INFO, logger="test.installlog"):
        reporter.on_transaction_start(2)
        entry = reporter.on_populate_cache_start(0, "python")
        download = reporter.on_download_start(entry)
        for got in range(0, 100, 10):  # ten callbacks within two seconds: no progress line
            reporter.on_download_progress(download, got << 20, 100 << 20)
        clock.advance(2.5)
        reporter.on_download_progress(download, 50 << 20, 100 << 20)
        reporter.on_download_progress(download, 60 << 20, 100 << 20)  # too soon after the last line
        reporter.on_download_completed(download)
        reporter.on_populate_cache_complete(entry)
        for op in range(2):
            reporter.on_link_complete(reporter.on_link_start(op, "python"))
        reporter.on_transaction_complete()

    assert [r.getMessage() for r in caplog.records] == [
        "install_started packages=2",
        "download_started package=python",
        "download_progress package=python got=50.0 MiB of=100.0 MiB (50%)",
        "downloaded package=python seconds=2.5 count=1",
        "linked packages=2 of=2",
        "install_finished linked=2 downloaded=1",
    ]
