"""LeaseKeeper: renews the builds a worker holds; a lost one is reported as not held."""

from __future__ import annotations

from condaops.reconciler.worker import LeaseKeeper, worker_name


def test_renewal_marks_builds_taken_over_as_lost():
    calls: list[set[int]] = []
    taken_over = {2}

    def renew(ids: set[int]) -> set[int]:
        calls.append(set(ids))
        return ids & taken_over

    keeper = LeaseKeeper(renew, lease=3600)  # the thread sleeps; renew_now drives it here
    keeper.hold(1)
    keeper.hold(2)
    keeper.renew_now()
    assert calls == [{1, 2}]
    assert keeper.held(1) and not keeper.held(2)
    keeper.release(1)
    keeper.release(2)
    keeper.renew_now()  # nothing held: no database call
    assert len(calls) == 1


def test_a_failed_renewal_keeps_the_builds_and_tries_again():
    attempts = []

    def renew(ids: set[int]) -> set[int]:
        attempts.append(ids)
        if len(attempts) == 1:
            raise OSError("database unreachable")
        return set()

    keeper = LeaseKeeper(renew, lease=3600)
    keeper.hold(7)
    keeper.renew_now()
    assert keeper.held(7)
    keeper.renew_now()
    assert len(attempts) == 2 and keeper.held(7)


def test_worker_names_are_unique_per_process_start():
    a, b = worker_name(), worker_name()
    assert a != b and a.rsplit(":", 1)[0] == b.rsplit(":", 1)[0]  # host:pid, then a random part
