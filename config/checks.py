"""Checks of particular keys: pure functions of a value (a problem as text, or None),
used through ``keys.KEY_RULES``, and the units they read (durations, sizes). Checks of
whole sections are in ``crosschecks``. Nothing here reads files or the environment.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from condaops.reconciler.names import KNOWN_PLATFORMS

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


STATUS_APIS = ("github", "gitlab", "gitea")


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


STORAGE_BACKENDS = ("filesystem", "s3")


PRESIGN_MAX_SECONDS = 7 * 24 * 3600  # S3 signature version 4 refuses longer-lived URLs


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


def layer_budget_problem(budget: float) -> str | None:
    if 2 <= budget <= LAYER_BUDGET_MAX:
        return None
    return f"must be between 2 and {LAYER_BUDGET_MAX}, got {budget}"
