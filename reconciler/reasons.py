"""The vocabulary of status reasons: every reason condaops records, each with its meaning.

A reason is a CamelCase word stored as-is in the state DB (builds, rejections, reviews,
deliveries) and shown as-is on the site and in ``condaops status``. ``Reason`` is a
``StrEnum``, so a member *is* its string: ``Reason.SPEC_CHANGED == "SpecChanged"``.
Code uses the members, never the strings (a unit test scans the code for stray literals);
``docs/operations.md`` lists them from here (regenerate the table with
``.venv/bin/python -m condaops.reconciler.reasons``). Standard library only.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """A status reason; ``.meaning`` says in one line what it means and what happens next."""

    meaning: str

    def __new__(cls, value: str, meaning: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    # The plan: why an environment is built, kept or left alone.
    NEW_ENVIRONMENT = "NewEnvironment", "an environment file appeared that has never been built"
    SPEC_CHANGED = "SpecChanged", "the environment file changed since the current build"
    BUILD_MISSING = "BuildMissing", "the linked prefix is missing on disk: it is built again"
    REBUILD = "Rebuild", "the last build of this file was canceled or never linked: it is built again"
    UP_TO_DATE = "UpToDate", "the current build matches the environment file: nothing to do"
    BUILD_IN_PROGRESS = "BuildInProgress", "a build of this specification is queued or running"
    RETRY_SCHEDULED = "RetryScheduled", "the last build failed for a passing cause: retried after a backoff"
    RETRY_PENDING = "RetryPending", "a failed attempt waits for its retry (`build.retries`)"
    RETRIES_EXHAUSTED = "RetriesExhausted", "every retry failed: waits for the environment file to change"
    SOURCE_REMOVED = "SourceRemoved", "the environment file is gone and pruning is on: the environment is retired"
    SOURCE_REMOVED_KEPT = "SourceRemovedKept", "the environment file is gone, pruning is off: the build stays linked"
    SOURCE_EMPTY = "SourceEmpty", "the source holds no environment file: nothing is retired"
    SOURCE_NOT_CONFIGURED = "SourceNotConfigured", "the environment's source is no longer configured: kept as it is"
    DUPLICATE_ENVIRONMENT = "DuplicateEnvironment", "two files give the same namespace/name: neither is built"
    ROLLED_BACK = "RolledBack", "an older build was linked on purpose (`condaops rollback`)"
    POLICY_CHANGED = "PolicyChanged", "the policy that applies changed since the build was checked: checked again"
    RETIRED = "Retired", "retired on purpose (`condaops retire`): unlinked, its builds kept until gc"

    # Sources: reading Git remotes and directories.
    SOURCE_UNREADABLE = "SourceUnreadable", "the source cannot be read: nothing is retired, the last good state is kept"
    SOURCE_UNREACHABLE = "SourceUnreachable", "the Git remote did not answer: fetched again with backoff"
    SOURCE_AUTH_FAILED = "SourceAuthFailed", "the Git remote refused the credentials: fix the source's key or token"
    SOURCE_BRANCH_MISSING = "SourceBranchMissing", "the configured branch does not exist on the remote"
    SOURCE_REF_MISSING = "SourceRefMissing", "a ref (branch, commit, change request) cannot be found"
    SOURCE_UNSETTLED = "SourceUnsettled", "the directory changed while it was read: read again"
    SOURCE_UNSUPPORTED = "SourceUnsupported", "a source sets neither `directory` nor `git`"
    PUSH_REJECTED = "PushRejected", "the Git remote refused a push: the ref moved or pushing is not allowed"
    SYMLINK_OUTSIDE_SOURCE = "SymlinkOutsideSource", "a symlink in the source points outside it: the file is ignored"
    FILE_UNREADABLE = "FileUnreadable", "one file of the source cannot be read"
    UNSUPPORTED_TREE_ENTRY = "UnsupportedTreeEntry", "a Git tree entry is a submodule or symlink: not read"
    NAME_INVALID = "NameInvalid", "the file's path gives no valid namespace or environment name: rename it"
    LAYOUT_UNSUPPORTED = "LayoutUnsupported", "the file is deeper or elsewhere than the source layout allows"

    # Environment files.
    SPEC_INVALID = "SpecInvalid", "the environment file is not a valid specification (the message names the key)"
    SPEC_YAML_INVALID = "SpecYamlInvalid", "the environment file is not valid YAML (or repeats a key)"
    SPEC_TOO_LARGE = "SpecTooLarge", "the environment file is larger than the limit (1 MiB)"
    SPEC_NOT_UTF8 = "SpecNotUtf8", "the environment file is not UTF-8 text"
    SPEC_TEMPLATED = "SpecTemplated", "the environment file holds a Jinja placeholder: render it and commit the result"
    SPEC_UNKNOWN_KEY = "SpecUnknownKey", "the environment file has a key condaops does not know"
    CHANNEL_INVALID = "ChannelInvalid", "a channel entry is not a channel name or URL"
    MATCH_SPEC_INVALID = "MatchSpecInvalid", "a dependency line is not a valid conda match spec"
    PIP_REQUIREMENT_INVALID = "PipRequirementInvalid", "a `pip:` line is not a valid requirement"
    PIP_REQUIREMENT_UNSUPPORTED = "PipRequirementUnsupported", "a `pip:` line uses a form condaops cannot lock"
    SELECTOR_INVALID = "SelectorInvalid", "a `# [selector]` comment cannot be read"

    # Committed lockfiles.
    LOCK_WITHOUT_SPEC = "LockWithoutSpec", "a committed lockfile has no environment file beside it"
    LOCK_AMBIGUOUS = "LockAmbiguous", "two lockfiles for one environment: keep one"
    LOCK_INVALID = "LockInvalid", "the lockfile cannot be read: not YAML, not the format, or too large"
    LOCK_STALE = "LockStale", "the lock no longer matches its environment file: re-lock and commit both"
    LOCK_PLATFORM_MISSING = "LockPlatformMissing", "the lock has no packages for the platform builds run on"
    LOCK_FAILED = "LockFailed", "writing the lockfiles of a solve failed"
    LOCK_COMMAND_FAILED = "LockCommandFailed", "`condaops lock` could not lock an environment file"

    # Builds: the steps from solve to link, and how an attempt ends.
    BUILD_FAILED = "BuildFailed", "a build step failed (the message says which and why)"
    BUILD_SUCCEEDED = "BuildSucceeded", "the build completed and is linked"
    BUILD_TIMEOUT = "BuildTimeout", "the build ran longer than `build.timeout`"
    SOLVE_FAILED = "SolveFailed", "the dependencies cannot be satisfied by the channels: change the file"
    CHANNEL_UNREACHABLE = "ChannelUnreachable", "a channel did not answer: retried later"
    CHANNEL_NOT_ALLOWED = "ChannelNotAllowed", "the file names a channel the configuration does not allow"
    INSTALL_FAILED = "InstallFailed", "installing the solved packages into the prefix failed"
    PIP_FAILED = "PipFailed", "locking or installing the `pip:` dependencies failed"
    VERIFY_FAILED = "VerifyFailed", "the installed prefix does not match its lock"
    PREFIX_EXISTS = "PrefixExists", "the build's prefix already exists: builds never change an existing prefix"
    PREFIX_IN_USE = "PrefixInUse", "the build's prefix is the linked one: never rebuilt in place"
    PACKAGE_UNVERIFIABLE = "PackageUnverifiable", "a package of a file channel has no digest in its repodata"
    PACKAGE_HASH_MISMATCH = (
        "PackageHashMismatch",
        "a package does not match its repodata digest: the channel is corrupt",
    )
    DISK_FULL = "DiskFull", "the disk is full or below `min_free_space`: retried later"
    LEASE_LOST = "LeaseLost", "another worker took the build over after this one stopped renewing its lease"
    SUPERSEDED = "Superseded", "a newer specification was queued: this build is not linked"
    INTERRUPTED = "Interrupted", "the process running the build stopped: the build is queued again"
    INTERNAL_ERROR = "InternalError", "an unexpected error in condaops (a bug): see the build log"
    STORE_BUSY = "StoreBusy", "another process writes to this SQLite store"

    # Policy.
    POLICY_VIOLATION = "PolicyViolation", "a blocking policy rule is broken (the message names rule, package, file)"
    POLICY_INVALID = "PolicyInvalid", "a policy file cannot be read: fix the file"

    # Publishing: tarballs, images, squashfs, pushes, signatures.
    PUBLISH_FAILED = "PublishFailed", "writing a tarball, layer or record failed on disk"
    PACK_FAILED = "PackFailed", "conda-pack could not pack the environment"
    IMAGE_FAILED = "ImageFailed", "the OCI image could not be built"
    IMAGE_NOT_RUNNABLE = "ImageNotRunnable", "the image was pushed but its programs cannot start on its base"
    BASE_IMAGE_UNUSABLE = "BaseImageUnusable", "the base image is unknown, for another architecture or unsupported"
    SQUASHFS_FAILED = "SquashfsFailed", "mksquashfs could not write the squashfs image"
    PUSH_FAILED = "PushFailed", "a push target failed"
    PUSH_REFUSED = "PushRefused", "a registry refused the credentials or the content: a human must act"
    REGISTRY_UNREACHABLE = "RegistryUnreachable", "a registry did not answer: a later publish may work"
    SIGNING_KEY_INVALID = (
        "SigningKeyInvalid",
        "`publish.signing.key_file` is unreadable, has a wrong password or is not P-256",
    )

    # Delivery: kernels, modulefiles, stable names.
    KERNEL_NAME_TAKEN = (
        "KernelNameTaken",
        "the kernel folder holds a kernel condaops did not write for this environment",
    )
    MODULE_NAME_TAKEN = "ModuleNameTaken", "the module folder holds modulefiles condaops did not write for it"
    NAME_TAKEN = "NameTaken", "the stable name is a folder, or a link to something other than this environment"
    KERNEL_COMMAND_MISSING = "KernelCommandMissing", "the kernelspec's program is not in the environment's bin/"
    DELIVERY_FAILED = "DeliveryFailed", "the delivery folder cannot be written (missing, permissions, disk full)"

    # Change requests and the CI check.
    TARGET_MOVED = "TargetMoved", "the target changed an environment this request touches since the merge base"
    FORCE_PUSHED = "ForcePushed", "the head was rewritten: the previously reviewed head is not in its history"
    REMOVES_EVERY_ENVIRONMENT = "RemovesEveryEnvironment", "the head has no environment file left"
    MERGE_BASE_MISSING = "MergeBaseMissing", "head and target share no history"
    HISTORY_TOO_SHALLOW = "HistoryTooShallow", "a shallow clone's history does not reach the merge base"
    NO_ENVIRONMENT_FILES = "NoEnvironmentFiles", "the chosen folder holds no environment file on either side"
    REF_UNKNOWN = "RefUnknown", "a name given to the check does not resolve to a commit"
    CHECK_FAILED = "CheckFailed", "the check cannot review this change (exit 2)"
    REVIEW_FAILED = "ReviewFailed", "a change request could not be reviewed"
    PREVIEW_REUSED = "PreviewReused", "a build of the same specification exists: used as the preview"

    # The registry.
    REGISTRY_REQUEST_REFUSED = "RegistryRequestRefused", "the registry refused a request (answered with the OCI error)"
    STORAGE_UNAVAILABLE = "StorageUnavailable", "the registry's storage (disk, S3) failed: try again"
    STORAGE_MISCONFIGURED = "StorageMisconfigured", "the registry's storage cannot be opened as configured"

    # Error kinds without a more precise reason.
    ERROR = "Error", "a condaops error with no more precise reason"
    CONFIG_INVALID = "ConfigInvalid", "the configuration file or a CONDAOPS_* variable is invalid"
    STALLED = "Stalled", "a human must change something before this can succeed"
    TRANSIENT_FAILURE = "TransientFailure", "a passing failure: retried later"
    OPERATION_REFUSED = "OperationRefused", "a CLI operation (rollback, retire, gc) was refused: the message says why"


def markdown_table() -> str:
    """The reasons table of docs/operations.md."""
    rows = [f"| `{r.value}` | {r.meaning} |" for r in sorted(Reason, key=lambda r: r.value)]
    return "\n".join(["| reason | meaning |", "| --- | --- |", *rows]) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
