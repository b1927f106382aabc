"""Checks of particular keys and of whole sections: pure functions of the values (a
problem as text, or None), used by ``config.load`` through ``KEY_RULES`` and
``CROSS_CHECKS``. Nothing here reads files or the environment.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from condaops.config.settings import (
    BUILTIN_TARGET,
    BuildSettings,
    PushTargetSettings,
    SigningSettings,
    SourceSettings,
    StorageSettings,
)
from condaops.reconciler.names import ref_glob_problem

KNOWN_PLATFORMS = (
    "linux-64",
    "linux-aarch64",
    "linux-ppc64le",
    "linux-s390x",
    "linux-32",
    "linux-armv6l",
    "linux-armv7l",
    "osx-64",
    "osx-arm64",
    "win-64",
    "win-32",
    "win-arm64",
)


_DURATION_RE = re.compile(r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(value: object) -> float | None:
    """Seconds from a number or text such as ``30s``, ``5m``, ``1h30m``, ``7d``; None if neither."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        return float(text)
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None:
        return None
    days, hours, minutes, seconds = (float(g or 0) for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: float) -> str:
    """The shortest text ``parse_duration`` reads back as ``seconds``."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or "0s"


def at_least(minimum: int) -> Callable[[float], str | None]:
    return lambda n: None if n >= minimum else f"must be at least {minimum}, got {_number(n)}"


def positive(n: float) -> str | None:
    return None if n > 0 else f"must be greater than 0, got {_number(n)}"


def between(minimum: float, maximum: float) -> Callable[[float], str | None]:
    """A whole number or count within ``minimum..maximum`` (both included)."""

    def check(n: float) -> str | None:
        if minimum <= n <= maximum:
            return None
        return f"must be between {_number(minimum)} and {_number(maximum)}, got {_number(n)}"

    return check


def duration_within(minimum: float, maximum: float, *, zero: bool = False) -> Callable[[float], str | None]:
    """Seconds within ``minimum..maximum`` (``zero``: 0 is allowed too, meaning "off")."""

    def check(seconds: float) -> str | None:
        if minimum <= seconds <= maximum or (zero and seconds == 0):
            return None
        low = f"0 or {format_duration(minimum)}" if zero else format_duration(minimum)
        return f"must be between {low} and {format_duration(maximum)}, got {_seconds(seconds)}"

    return check


def size_within(minimum: int, maximum: int) -> Callable[[float], str | None]:
    """A size in bytes within ``minimum..maximum``."""

    def check(size: float) -> str | None:
        if minimum <= size <= maximum:
            return None
        return f"must be between {format_size(minimum)} and {format_size(maximum)}, got {_number(size)} bytes"

    return check


def _number(n: float) -> str:
    """A number as given, shortened when huge (a 30-digit value must not flood the message)."""
    text = str(n) if isinstance(n, int) else f"{n:g}"
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} digits)"


def _seconds(seconds: float) -> str:
    return format_duration(seconds) if 0 <= seconds < 1e12 else _number(seconds)


_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?)B?", re.IGNORECASE)
_SIZE_UNITS = "KMGTP"


def parse_size(value: object) -> int | None:
    """Bytes from a whole number or text such as ``512MiB``, ``1GiB``, ``20G``, ``500MB``;
    ``Ki``/``KiB`` are powers of 1024, ``K``/``KB`` of 1000. None if neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None
    match = _SIZE_RE.fullmatch(value.strip())
    if match is None:
        return None
    number, unit, binary = match.groups()
    if binary and not unit:
        return None
    power = _SIZE_UNITS.index(unit.upper()) + 1 if unit else 0
    return int(float(number) * (1024 if binary else 1000) ** power)


def format_size(size: int) -> str:
    """The shortest exact text ``parse_size`` reads back as ``size`` (``1GiB``, ``1500``)."""
    for power in range(len(_SIZE_UNITS), 0, -1):
        if size and size % 1024**power == 0:
            return f"{size // 1024**power}{_SIZE_UNITS[power - 1]}iB"
    return str(size)


def not_empty(items: tuple[object, ...]) -> str | None:
    return None if items else "must list at least one entry (leave the key out for the default)"


def platform_problem(name: str) -> str | None:
    if name in KNOWN_PLATFORMS:
        return None
    if name == "noarch":
        return "'noarch' cannot be locked for; list real platforms such as linux-64"
    close = difflib.get_close_matches(name, KNOWN_PLATFORMS, n=1)
    return f"unknown platform '{name}'" + (f"; did you mean '{close[0]}'?" if close else "")


def listen_problem(text: str) -> str | None:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        return f"'{text}' is not host:port, such as 127.0.0.1:8080 or [::1]:8080"
    if not re.fullmatch(r"\d{1,5}", port, re.ASCII) or not 1 <= int(port) <= 65535:
        return f"port '{port}' must be a number from 1 to 65535"
    if host.startswith("[") and host.endswith("]"):
        return None if _is_ip(host[1:-1], ipaddress.IPv6Address) else f"'{host}' is not an IPv6 address"
    if ":" in host:
        return f"put the IPv6 address in brackets, like [{host}]:{port}"
    if re.fullmatch(r"[\d.]+", host):
        return None if _is_ip(host, ipaddress.IPv4Address) else f"'{host}' is not an IPv4 address"
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", host):
        return f"'{host}' is not a host name or IP address"
    return None


def _is_ip(text: str, kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


def is_url(text: str, schemes: tuple[str, ...] | None) -> bool:
    parts = urlsplit(text)
    return bool(parts.netloc) and (parts.scheme in schemes if schemes else bool(parts.scheme))


def is_remote(location: str) -> bool:
    """A URL or scp-like ``user@host:path``, not a local path."""
    return "://" in location or re.match(r"^[^/]+:", location) is not None


WEB_TOKEN_MIN_LENGTH = 16


PUBLIC = "public"


def web_token_problem(token: str) -> str | None:
    return _token_problem(token, "tokens", WEB_TOKEN_MIN_LENGTH)


def _token_problem(token: str, what: str, minimum: int) -> str | None:
    """Tokens are secrets: messages never repeat them."""
    if len(token) < minimum or any(c.isspace() or not c.isprintable() for c in token):
        return (
            f"{what} must be at least {minimum} printable characters without spaces; "
            "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return None


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


UPDATE_GROUPS = ("environment", "namespace")
_CRON_FIELD = re.compile(r"[0-9*,/\-A-Za-z?]+")


def schedule_problem(text: str) -> str | None:
    """An interval (``6h``, ``1d``, seconds) or a five-field cron expression."""
    seconds = parse_duration(text)
    if seconds is not None:
        return None if 1 <= seconds <= 366 * 86400 else "an interval must be between 1s and 366 days"
    fields = text.split()
    if len(fields) == 5 and all(_CRON_FIELD.fullmatch(f) for f in fields):
        return None
    return f"'{text}' is neither an interval (6h, 1d) nor a cron expression of five fields (0 6 * * 1-5)"


def update_group_problem(text: str) -> str | None:
    return None if text in UPDATE_GROUPS else f"unknown group '{text}'; use one of {', '.join(UPDATE_GROUPS)}"


def branch_prefix_problem(text: str) -> str | None:
    """A prefix Git accepts in a branch name (``git check-ref-format`` rules that matter here)."""
    if not text or text.startswith(("/", "-")) or text.endswith(("/", ".", ".lock")):
        return f"'{text}' cannot start a branch name: use something like condaops/update"
    if ".." in text or "//" in text or any(c in text for c in " ~^:?*[\\") or any(ord(c) < 32 for c in text):
        return f"'{text}' has characters Git refuses in branch names"
    return None


def author_problem(text: str) -> str | None:
    if re.fullmatch(r"[^<>\n]+ <[^<>\s]+@[^<>\s]*>", text):
        return None
    return f"'{text}' is not 'Name <email>'"


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


STATUS_APIS = ("github", "gitlab", "gitea")


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


def status_api_problem(name: str) -> str | None:
    if name in STATUS_APIS:
        return None
    return f"unknown status API '{name}'; use one of {', '.join(STATUS_APIS)}"


def http_url_problem(url: str) -> str | None:
    if is_url(url, ("http", "https")):
        return None
    return f"'{url}' must be an http:// or https:// URL"


def not_blank(text: str) -> str | None:
    return None if text.strip() else "must not be empty"


def variable_name_problem(name: str) -> str | None:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return None
    return f"'{name}' is not an environment variable name (letters, digits and '_', not starting with a digit)"


def with_mirror_dir(source: SourceSettings, store: Path) -> SourceSettings:
    """Git sources mirror into ``<store>/.cache/git`` unless ``mirror_dir`` says otherwise."""
    if source.git is None or source.mirror_dir is not None:
        return source
    return dataclasses.replace(source, mirror_dir=store / ".cache" / "git")


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


STORAGE_BACKENDS = ("filesystem", "s3")


PRESIGN_MAX_SECONDS = 7 * 24 * 3600  # S3 signature version 4 refuses longer-lived URLs


def _storage_backend(storage: StorageSettings) -> list[tuple[str, str]]:
    if storage.backend == "s3" and not storage.s3_bucket:
        return [("s3_bucket", "is required when storage.backend is 's3'")]
    if storage.backend == "filesystem" and storage.s3_bucket:
        return [("backend", "is 'filesystem' but storage.s3_bucket is set; set backend: s3 or remove s3_bucket")]
    return []


def backend_problem(name: str) -> str | None:
    if name in STORAGE_BACKENDS:
        return None
    return f"unknown storage backend '{name}'; use one of {', '.join(STORAGE_BACKENDS)}"


PUSH_TOKEN_MIN_LENGTH = 16


def push_token_problem(token: str) -> str | None:
    return _token_problem(token, "push tokens", PUSH_TOKEN_MIN_LENGTH)


def file_problem(path: Path) -> str | None:
    return None if path.is_file() else f"'{path}' is not a file; create it or fix the path"


def endpoint_problem(url: str) -> str | None:
    if not url or is_url(url, ("http", "https")):
        return None
    return f"'{url}' must be an http:// or https:// URL, such as http://minio.example:9000"


def expiry_problem(seconds: float) -> str | None:
    if 0 < seconds <= PRESIGN_MAX_SECONDS:
        return None
    return f"must be greater than 0 and at most 7 days (S3's limit), got {format_duration(seconds)}"


PACK_FORMATS = ("tar.zst", "tar.gz")
LAYER_COMPRESSIONS = ("zstd", "gzip")


LAYER_BUDGET_MAX = 127  # older Docker and overlayfs setups refuse more layers


_IMAGE_PREFIX_RE = re.compile(r"(/[A-Za-z0-9._-]+)+")


def pack_format_problem(fmt: str) -> str | None:
    return None if fmt in PACK_FORMATS else f"unknown format '{fmt}'; use one of {', '.join(PACK_FORMATS)}"


MODULE_FORMATS = ("lua", "tcl", "both")
SQUASHFS_COMPRESSIONS = ("zstd", "gzip")


def module_format_problem(fmt: str) -> str | None:
    return None if fmt in MODULE_FORMATS else f"unknown format '{fmt}'; use one of {', '.join(MODULE_FORMATS)}"


def squashfs_compression_problem(comp: str) -> str | None:
    if comp in SQUASHFS_COMPRESSIONS:
        return None
    return f"unknown compression '{comp}'; use one of {', '.join(SQUASHFS_COMPRESSIONS)}"


def display_name_problem(template: str) -> str | None:
    """A kernel display name template may use ``{name}`` and ``{namespace}`` only."""
    try:
        template.format(name="n", namespace="ns")
    except (KeyError, IndexError, ValueError) as exc:
        return f"'{template}' is not a valid template ({exc!r}); use {{name}} and {{namespace}} only"
    return None if template.strip() else "must not be empty"


def layer_compression_problem(name: str) -> str | None:
    if name in LAYER_COMPRESSIONS:
        return None
    return f"unknown layer compression '{name}'; use one of {', '.join(LAYER_COMPRESSIONS)}"


def image_prefix_problem(path: str) -> str | None:
    if _IMAGE_PREFIX_RE.fullmatch(path) and ".." not in path.split("/"):
        return None
    return (
        f"'{path}' must be an absolute path of letters, digits, '.', '_', '-' without a trailing slash, e.g. /opt/env"
    )


_IMAGE_REF_RE = re.compile(
    r"(?P<host>[A-Za-z0-9.-]+(?::\d+)?|\[[0-9A-Fa-f:]+\](?::\d+)?)/"
    r"(?P<repo>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)


def image_base_problem(base: str) -> str | None:
    """A full reference: the registry host is required (no implicit Docker Hub); or
    ``scratch`` for no base."""
    if base == "scratch":
        return None
    if _IMAGE_REF_RE.fullmatch(base) and (
        "." in base.split("/")[0] or ":" in base.split("/")[0] or base.split("/")[0] == "localhost"
    ):
        return None
    return (
        f"'{base}' is not a full image reference such as registry.example.org/base/debian:12, "
        "docker.io/library/debian:12 or 127.0.0.1:5000/base@sha256:<64 hex> (or scratch for no base; "
        "leave it unset for the built-in base)"
    )


def registry_url(text: str) -> str:
    return text if "://" in text else f"https://{text}"


def registry_url_problem(url: str) -> str | None:
    parts = urlsplit(registry_url(url))
    if parts.scheme in ("http", "https") and parts.netloc and parts.path in ("", "/") and not parts.query:
        return None
    return (
        f"'{url}' must be a registry host such as registry.example.org, 127.0.0.1:5000 or "
        "https://registry.example.org (put repository paths in 'repository')"
    )


def repository_prefix_problem(prefix: str) -> str | None:
    if not prefix or re.fullmatch(
        r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*", prefix
    ):
        return None
    return f"'{prefix}' is not a repository path: lowercase letters, digits and '.', '_', '-' between '/'"


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


def layer_budget_problem(budget: float) -> str | None:
    if 2 <= budget <= LAYER_BUDGET_MAX:
        return None
    return f"must be between 2 and {LAYER_BUDGET_MAX}, got {budget}"


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
