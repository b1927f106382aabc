"""Committed lockfiles: the reasons their problems carry (stored and shown as-is), and
their limits. No imports: the sources' layout rules, the build steps and the checks all
use these."""

LOCK_WITHOUT_SPEC = "LockWithoutSpec"  # a committed lockfile with no environment file beside it
LOCK_AMBIGUOUS = "LockAmbiguous"  # two lockfiles for one environment: which one to install?
LOCK_INVALID = "LockInvalid"  # the lockfile cannot be read: not YAML, not the format, too large
LOCK_STALE = "LockStale"  # the lock no longer matches its environment file: re-lock and commit both
LOCK_PLATFORM_MISSING = "LockPlatformMissing"  # the lock has no packages for the platform builds run on

MAX_LOCK_BYTES = 16 << 20  # a lockfile of thousands of packages on six platforms stays far below
