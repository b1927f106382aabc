"""The publish job runs at a lower CPU priority than builds, in a thread of its own."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from condaops.reconciler.publish.job import PUBLISH_NICENESS, lower_priority


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_only_the_publishing_thread_and_its_children_yield() -> None:
    seen: dict[str, int] = {}

    def publishing() -> None:
        lower_priority(PUBLISH_NICENESS)
        seen["publish"] = os.getpriority(os.PRIO_PROCESS, 0)
        child = threading.Thread(target=lambda: seen.update(child=os.getpriority(os.PRIO_PROCESS, 0)))
        child.start()
        child.join()

    here = os.getpriority(os.PRIO_PROCESS, 0)
    thread = threading.Thread(target=publishing)
    thread.start()
    thread.join()
    assert seen["publish"] == min(here + PUBLISH_NICENESS, 19)
    assert seen["child"] == seen["publish"]  # the layers' and the tarball's threads inherit it
    assert os.getpriority(os.PRIO_PROCESS, 0) == here  # the caller's thread is untouched
