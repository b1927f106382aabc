"""Committed lockfiles: the reasons their problems carry (stored and shown as-is), and
their limits. Imports only the reasons: the sources' layout rules, the build steps and the
checks all use these."""

from condaops.reconciler.reasons import Reason

LOCK_WITHOUT_SPEC = Reason.LOCK_WITHOUT_SPEC  # a committed lockfile with no environment file beside it
LOCK_AMBIGUOUS = Reason.LOCK_AMBIGUOUS  # two lockfiles for one environment: which one to install?
LOCK_INVALID = Reason.LOCK_INVALID  # the lockfile cannot be read: not YAML, not the format, too large
LOCK_STALE = Reason.LOCK_STALE  # the lock no longer matches its environment file: re-lock and commit both
LOCK_PLATFORM_MISSING = Reason.LOCK_PLATFORM_MISSING  # the lock has no packages for the platform builds run on

MAX_LOCK_BYTES = 16 << 20  # a lockfile of thousands of packages on six platforms stays far below
