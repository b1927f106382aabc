"""A desired environment with a committed lockfile becomes a *locked spec*, or a rejection.

Applied by ``desired.effective`` (after spec defaults are filled), so the reconcile pass,
change-request reviews and the CI check judge locks alike. A good lock pins the spec
(``Spec.lock``: its kind and package digest, part of the identity): the plan builds when
the lock changes and the build installs it without solving. A lock that cannot be read,
lacks this host's platform, or no longer matches its environment file becomes a
rejection naming both files: the environment's current build stays linked.

Reading and checking cost up to a few hundred milliseconds for a large lock and every
pass asks again, so verdicts are kept by (lock bytes, spec, host, channel settings).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import replace

from condaops.config import Settings
from condaops.reconciler.build.channels import host_platform, spec_channels
from condaops.reconciler.build.locked import read_lock
from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.lockfiles import LOCK_PLATFORM_MISSING, LOCK_STALE
from condaops.reconciler.locks.check import MAX_PROBLEMS, LockProblem, lock_problems
from condaops.reconciler.model import DesiredEnv, Rejection, SourceSnapshot
from condaops.reconciler.spec import LockPin, Spec

CACHE_LIMIT = 512  # verdicts kept (a pin or a few lines of text each)

_Verdict = LockPin | list[LockProblem]
_cache: OrderedDict[tuple[str, ...], _Verdict] = OrderedDict()
_lock = threading.Lock()


def lock_snapshot(snapshot: SourceSnapshot, settings: Settings, *, host: str | None = None) -> SourceSnapshot:
    """Environments with a lockfile become locked specs or rejections; others are kept."""
    if not any(env.lock is not None for env in snapshot.envs):
        return snapshot
    host = host or host_platform()
    envs: list[DesiredEnv] = []
    rejections = list(snapshot.rejections)
    for env in snapshot.envs:
        if env.lock is None:
            envs.append(env)
            continue
        verdict = judge(env, settings, host)
        if isinstance(verdict, LockPin):
            envs.append(replace(env, spec=replace(env.spec, lock=verdict)))
        else:
            rejections.append(rejection(env, verdict, host))
    rejections.sort(key=lambda r: (r.path, r.reason))
    return replace(snapshot, envs=tuple(envs), rejections=tuple(rejections))


def judge(env: DesiredEnv, settings: Settings, host: str) -> _Verdict:
    """The lock's pin, or its problems (kept in a small cache)."""
    assert env.lock is not None
    spec = env.spec.unlocked
    channels = settings.channels
    key = (
        hashlib.sha256(env.lock.data).hexdigest(),
        env.lock.kind,
        spec.spec_hash,
        host,
        repr((channels.default, channels.allowed, channels.alias)),
    )
    with _lock:
        if (found := _cache.get(key)) is not None:
            _cache.move_to_end(key)
            return found
    verdict = _judge(env, spec, settings, host)
    with _lock:
        _cache[key] = verdict
        while len(_cache) > CACHE_LIMIT:
            _cache.popitem(last=False)
    return verdict


def _judge(env: DesiredEnv, spec: Spec, settings: Settings, host: str) -> _Verdict:
    assert env.lock is not None
    try:
        locked = read_lock(env.lock.data, env.lock.kind, path=env.lock.path)
        urls = spec_channels(spec, settings.channels, str(env.ref))
    except CondaopsError as exc:
        return [LockProblem(exc.reason, exc.message)]
    problems = lock_problems(locked, spec, host=host, channels=urls, alias=settings.channels.alias)
    return problems or LockPin(locked.kind, locked.digest)


def rejection(env: DesiredEnv, problems: list[LockProblem], host: str) -> Rejection:
    """The rejection of ``env`` for its lock's problems: the message names both files."""
    assert env.lock is not None
    lock, ref = env.lock.path, env.ref
    reason = problems[0].reason
    shown = "; ".join(p.message for p in problems[:MAX_PROBLEMS])
    more = f" (and {len(problems) - MAX_PROBLEMS} more)" if len(problems) > MAX_PROBLEMS else ""
    if reason == LOCK_STALE:
        message = f"{lock} does not match {env.path}: {shown}{more}; run `condaops lock {ref}` and commit both files"
    elif reason == LOCK_PLATFORM_MISSING:
        message = f"{lock} {shown}: lock {host} too (`condaops lock {ref}` with {host} among the platforms)"
    else:
        message = shown if lock in shown else f"{lock}: {shown}"
    return Rejection(ref, env.source, lock, reason, message)
