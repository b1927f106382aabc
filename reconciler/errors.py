"""The condaops error tree.

Every error carries a one-sentence user message that names the file, environment or
key and says what to do. The subtype says what happens next:

* ``TransientError`` — retry later with backoff (network, timeouts, busy resources);
* ``StalledError``  — retrying cannot help; a human must change the spec or config;
* ``ConfigError``   — the configuration is wrong; the process exits with status 2.

Third-party exceptions are wrapped at the boundary (``raise ... from exc``). Only the
build-step runner catches bare ``Exception``, turning it into a recorded outcome.
"""

from __future__ import annotations

from condaops.reconciler.reasons import Reason


class CondaopsError(Exception):
    """Base of every error condaops raises on purpose.

    ``reason`` is a CamelCase constant stored as-is in the state DB and shown as-is.
    """

    reason: str = Reason.ERROR

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason

    def __str__(self) -> str:
        return self.message


class ConfigError(CondaopsError):
    """The settings file or a ``CONDAOPS_*`` variable is invalid (exit status 2)."""

    reason = Reason.CONFIG_INVALID

    def __init__(self, message: str, *, key: str | None = None, file: str | None = None) -> None:
        where = []
        if file:
            where.append(file)
        if key:
            where.append(f"key '{key}'")
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.key = key
        self.file = file


class StalledError(CondaopsError):
    """Retrying cannot help: a human has to act (change the spec, the config...)."""

    reason = Reason.STALLED


class TransientError(CondaopsError):
    """The operation may succeed later: retry with exponential backoff."""

    reason = Reason.TRANSIENT_FAILURE


class SpecError(StalledError):
    """An environment file cannot be turned into a specification.

    ``file`` is the path as the user knows it (relative to the source root when possible),
    ``line`` is 1-based when known.
    """

    reason = Reason.SPEC_INVALID

    def __init__(
        self,
        message: str,
        *,
        file: str,
        line: int | None = None,
        key: str | None = None,
        reason: str | None = None,
    ) -> None:
        location = f"{file}:{line}" if line else file
        super().__init__(f"{location}: {message}", reason=reason)
        self.file = file
        self.line = line
        self.key = key
        self.detail = message


class SourceError(TransientError):
    """A source (directory, Git remote) could not be read; keep the last good state."""

    reason = Reason.SOURCE_UNREADABLE


class BuildError(CondaopsError):
    """Base for build-step failures; ``retryable`` says whether backoff may help."""

    reason = Reason.BUILD_FAILED
    retryable = False


class LeaseLostError(BuildError):
    """Another worker took this build over: this one stopped renewing its lease in time."""

    reason = Reason.LEASE_LOST


class SolveError(BuildError, StalledError):
    """The specs cannot be satisfied by the channels: change the spec."""

    reason = Reason.SOLVE_FAILED


class ChannelError(BuildError, TransientError):
    """A channel could not be fetched (network, HTTP error): retried with backoff."""

    reason = Reason.CHANNEL_UNREACHABLE
    retryable = True


class ChannelNotAllowedError(BuildError, StalledError):
    """The spec names a channel outside ``channels.allowed``."""

    reason = Reason.CHANNEL_NOT_ALLOWED


class InstallError(BuildError, TransientError):
    """Downloading or linking packages failed; retried with backoff."""

    reason = Reason.INSTALL_FAILED
    retryable = True


class PipError(BuildError, StalledError):
    """uv could not lock or install the ``pip:`` dependencies."""

    reason = Reason.PIP_FAILED


class BuildTimeoutError(BuildError, TransientError):
    """The build ran past ``build.timeout``."""

    reason = Reason.BUILD_TIMEOUT
    retryable = True


class LockError(BuildError, StalledError):
    """A committed lockfile cannot be read, does not match its spec or this host: commit a
    good lock (``condaops lock``); the reason says which (``lockfiles``)."""

    reason = Reason.LOCK_INVALID


class VerifyError(BuildError, StalledError):
    """The installed prefix failed verification."""

    reason = Reason.VERIFY_FAILED


class PolicyViolationError(BuildError, StalledError):
    """The solved packages break a blocking policy rule: change the environment or the policy."""

    reason = Reason.POLICY_VIOLATION  # a blocking rule is broken; the message names rule, package and file


class PolicyInvalidError(BuildError, StalledError):
    """A policy file that applies to the environment is invalid: the build is not checked, so it fails."""

    reason = Reason.POLICY_INVALID  # a policy file (or policy.site_file) cannot be read; fix the file
