"""Checks of whole sections: keys that only make sense together (a transport's
credentials, a forge's repository and token, one secret each, backoff bounds). Each check
takes a built settings dataclass and returns ``(key, problem)`` pairs; ``convert`` runs
the one for its class through ``CROSS_CHECKS`` once every key of the section converted.
Pure: nothing here reads files or the environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from condaops.config.checks import format_duration, is_remote
from condaops.config.settings import (
    BUILTIN_TARGET,
    BuildSettings,
    PushTargetSettings,
    SigningSettings,
    SourceSettings,
    StorageSettings,
)
from condaops.reconciler.names import ref_glob_problem

_HTTP_ONLY = ("username", "password_env", "password_file")


_SSH_ONLY = ("ssh_key_file", "ssh_known_hosts")


def _git_transport(source: SourceSettings) -> str | None:
    """``http``, ``ssh``, ``other`` (git://, file://, a local path) or None (not Git)."""
    if source.git is None:
        return None
    location = source.git.lower()
    if location.startswith(("http://", "https://")):
        return "http"
    if location.startswith(("ssh://", "git+ssh://")) or ("://" not in location and is_remote(location)):
        return "ssh"
    return "other"


def _source_keys(source: SourceSettings) -> list[tuple[str, str]]:
    """Transport keys only where they apply: a secret that is silently unused helps nobody."""
    transport = _git_transport(source)
    problems = [
        (key, "applies only to Git sources with an http:// or https:// URL")
        for key in _HTTP_ONLY
        if getattr(source, key) is not None and transport != "http"
    ]
    problems += [
        (key, "applies only to Git sources with an ssh:// or user@host:path URL")
        for key in _SSH_ONLY
        if getattr(source, key) is not None and transport != "ssh"
    ]
    if source.mirror_dir is not None and transport is None:
        problems.append(("mirror_dir", "applies only to Git sources"))
    if source.password_env is not None and source.password_file is not None:
        problems.append(("password_file", "set only one of 'password_env' and 'password_file'"))
    return problems + _status_keys(source) + _webhook_keys(source) + _change_keys(source) + _update_keys(source)


def _update_keys(source: SourceSettings) -> list[tuple[str, str]]:
    """Pull requests need a Git remote to push to and a forge to open them on."""
    updates = source.updates
    if updates is None or not updates.pull_requests:
        return []
    if source.git is None:
        return [("updates.pull_requests", "needs a Git source; set it to false for reports only")]
    if source.status_api is None:
        return [
            (
                "updates.pull_requests",
                "needs the forge of the source: set status_api, status_repo and status_token_env "
                "(or set pull_requests: false for reports only)",
            )
        ]
    return []


def _change_keys(source: SourceSettings) -> list[tuple[str, str]]:
    """Change requests are refs of a Git remote, whose pages ``web_url`` links to."""
    if source.web_url is not None and source.git is None:
        return [("web_url", "applies only to Git sources (links to pull requests and commits)")]
    if source.change_requests and source.git is None:
        return [("change_requests", "applies only to Git sources (pull requests are Git refs)")]
    return [("change_refspecs", problem) for problem in map(ref_glob_problem, source.change_refspecs) if problem]


_WEBHOOK_KEYS = ("webhook_secret_env", "webhook_secret_file")


def _webhook_keys(source: SourceSettings) -> list[tuple[str, str]]:
    """A webhook refreshes a Git source; one secret per source."""
    if source.git is None:
        return [(key, "applies only to Git sources") for key in _WEBHOOK_KEYS if getattr(source, key) is not None]
    if source.webhook_secret_env is not None and source.webhook_secret_file is not None:
        return [("webhook_secret_file", "set only one of 'webhook_secret_env' and 'webhook_secret_file'")]
    return []


_STATUS_ONLY = ("status_url", "status_repo", "status_token_env", "status_token_file", "status_target_url")


_REPO_PART = r"[A-Za-z0-9_.-]+"


def _status_keys(source: SourceSettings) -> list[tuple[str, str]]:
    """Commit statuses need a Git source, a server, a repository and exactly one token."""
    if source.status_api is None:
        return [(key, "applies only with 'status_api'") for key in _STATUS_ONLY if getattr(source, key) is not None]
    if source.git is None:
        return [("status_api", "applies only to Git sources (statuses are posted for commits)")]
    problems = []
    if source.status_url is None and source.status_api != "github":
        problems.append(
            (
                "status_url",
                f"is required when status_api is '{source.status_api}'; "
                "set the server's URL, such as https://git.example.org",
            )
        )
    if source.status_repo is None:
        problems.append(("status_repo", "is required when 'status_api' is set; set the repository, such as owner/name"))
    elif problem := _status_repo_problem(source.status_api, source.status_repo):
        problems.append(("status_repo", problem))
    if source.status_token_env is not None and source.status_token_file is not None:
        problems.append(("status_token_file", "set only one of 'status_token_env' and 'status_token_file'"))
    elif source.status_token_env is None and source.status_token_file is None:
        problems.append(("status_api", "needs a token; set 'status_token_env' or 'status_token_file'"))
    return problems


def _status_repo_problem(api: str, repo: str) -> str | None:
    if re.fullmatch(f"{_REPO_PART}/{_REPO_PART}", repo):
        return None
    if api != "gitlab":
        return f"'{repo}' is not owner/name, such as conda/environments"
    if re.fullmatch(rf"\d+|{_REPO_PART}(?:/{_REPO_PART})+", repo):
        return None
    return f"'{repo}' is not a project id such as 42 or a path such as group/subgroup/project"


def _backoff_order(build: BuildSettings) -> list[tuple[str, str]]:
    if build.backoff_max >= build.backoff:
        return []
    return [
        (
            "backoff_max",
            f"must be at least build.backoff ({format_duration(build.backoff)}), "
            f"got {format_duration(build.backoff_max)}",
        )
    ]


def _storage_backend(storage: StorageSettings) -> list[tuple[str, str]]:
    if storage.backend == "s3" and not storage.s3_bucket:
        return [("s3_bucket", "is required when storage.backend is 's3'")]
    if storage.backend == "filesystem" and storage.s3_bucket:
        return [("backend", "is 'filesystem' but storage.s3_bucket is set; set backend: s3 or remove s3_bucket")]
    return []


_TARGET_ONLY = ("username", "password_env", "password_file", "insecure")


def _push_target_keys(target: PushTargetSettings) -> list[tuple[str, str]]:
    """Credentials and transport apply to external registries only; one secret each."""
    if target.builtin:
        keys = [k for k in _TARGET_ONLY if getattr(target, k) not in (None, False)]
        keys += ["repository"] if target.repository else []
        return [(k, "applies only to external registries (set 'url')") for k in keys]
    problems = []
    if target.name == BUILTIN_TARGET:
        problems.append(("name", f"'{BUILTIN_TARGET}' names the built-in registry; pick another name"))
    if target.password_env is not None and target.password_file is not None:
        problems.append(("password_file", "set only one of 'password_env' and 'password_file'"))
    if target.username is not None and target.password_env is None and target.password_file is None:
        problems.append(("username", "needs a password; set 'password_env' or 'password_file'"))
    return problems


def _signing_keys(signing: SigningSettings) -> list[tuple[str, str]]:
    problems = []
    if signing.password_env is not None and signing.password_file is not None:
        problems.append(("password_file", "set only one of 'password_env' and 'password_file'"))
    if signing.key_file is None:
        for key in ("password_env", "password_file", "public_key_file", "registry_host"):
            if getattr(signing, key) is not None:
                problems.append((key, "has no effect without 'key_file'; set 'key_file' or remove it"))
    return problems


CROSS_CHECKS: dict[type, Callable[[Any], list[tuple[str, str]]]] = {
    BuildSettings: _backoff_order,
    SourceSettings: _source_keys,
    StorageSettings: _storage_backend,
    PushTargetSettings: _push_target_keys,
    SigningSettings: _signing_keys,
}
