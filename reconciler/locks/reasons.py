"""Reasons a committed lockfile can carry, stored and shown as-is (no imports: the sources'
layout rules use them too)."""

LOCK_WITHOUT_SPEC = "LockWithoutSpec"  # a committed lockfile with no environment file beside it
LOCK_AMBIGUOUS = "LockAmbiguous"  # two lockfiles for one environment: which one to install?
LOCK_INVALID = "LockInvalid"  # the lockfile cannot be read: not YAML, not the format, too large
LOCK_STALE = "LockStale"  # the lock no longer matches its environment file: re-lock and commit both
LOCK_PLATFORM_MISSING = "LockPlatformMissing"  # the lock has no packages for the platform builds run on
LOCKED = "Locked"  # a build installed a committed lock (no solve)
