"""What particular keys accept beyond their Python type: ``KEY_RULES``, keyed by the
key's pattern (``sources[].name``), each with the text the reference shows, the type name,
a converter and a check. The converters here handle the keys whose YAML form differs from
their type (durations, sizes, the database URL, mirrors, sources, push targets, visibility).
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

from condaops.config.checks import (
    LAYER_BUDGET_MAX,
    PUBLIC,
    PUSH_TOKEN_MIN_LENGTH,
    WEB_TOKEN_MIN_LENGTH,
    author_problem,
    backend_problem,
    between,
    branch_prefix_problem,
    display_name_problem,
    duration_within,
    endpoint_problem,
    expiry_problem,
    file_problem,
    http_url_problem,
    image_base_problem,
    image_prefix_problem,
    is_remote,
    is_url,
    layer_budget_problem,
    layer_compression_problem,
    listen_problem,
    module_format_problem,
    not_blank,
    not_empty,
    pack_format_problem,
    parse_duration,
    parse_size,
    platform_problem,
    push_token_problem,
    registry_url,
    registry_url_problem,
    repository_prefix_problem,
    schedule_problem,
    size_within,
    squashfs_compression_problem,
    status_api_problem,
    update_group_problem,
    variable_name_problem,
    web_token_problem,
)
from condaops.config.convert import Context, Invalid, KeyRule, Skip, by_type, convert_items, convert_section, describe
from condaops.config.settings import BUILTIN_TARGET, PushTargetSettings, SourceSettings
from condaops.reconciler.names import KNOWN_PLATFORMS, name_problem


def _duration(value: Any, tp: Any, key: str, ctx: Context) -> float:
    seconds = parse_duration(value)
    if seconds is None:
        raise Invalid(f"{ctx.expected(tp, key, value)}; use seconds or text such as 30s, 5m, 1h30m")
    return seconds


def _size(value: Any, tp: Any, key: str, ctx: Context) -> int:
    size = parse_size(value)
    if size is None:
        raise Invalid(f"{ctx.expected(tp, key, value)}; use bytes or text such as 512MiB, 1GiB, 20G")
    return size


_DATABASE_KINDS = ("sqlite", "postgresql")  # the state DB's tested backends
_URL_RE = re.compile(r"^(?P<driver>[A-Za-z][A-Za-z0-9_]*(\+[A-Za-z0-9_]+)?)://(?P<rest>.*)$", re.DOTALL)
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^:/\[\]@]*)(:\d*)?$")


def _database(value: Any, tp: Any, key: str, ctx: Context) -> str:
    """A SQLAlchemy URL of a kind the state DB supports; a relative SQLite path resolves
    like ``store``. Read with the standard library: the URL may hold a password (with any
    character but none of it is ever repeated in a message)."""
    text = by_type(value, tp, key, ctx)
    if not text:
        return text
    match = _URL_RE.match(text)
    # user:password@ may hold '/', '?' and '#': the host part starts after the last '@'
    after_user = match["rest"][match["rest"].rfind("@") + 1 :] if match else ""
    location, question, query = after_user.partition("?")
    host, slash, database = location.partition("/")
    if match is None or not _HOST_RE.match(host):
        raise Invalid(
            "is not a SQLAlchemy URL such as sqlite:////srv/condaops.db or postgresql+psycopg://user@host/condaops"
        )
    driver = match["driver"]
    if driver.split("+")[0] not in _DATABASE_KINDS:
        raise Invalid(f"unknown database kind '{driver}'; use sqlite or postgresql+psycopg")
    relative = not os.path.isabs(database) and database not in ("", ":memory:") and not database.startswith("file:")
    if driver.startswith("sqlite") and relative:
        return f"{driver}:///{ctx.path(database)}{question}{query}"
    return text


def _mirrors(value: Any, tp: Any, key: str, ctx: Context) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise Invalid(ctx.expected(tp, key, value))
    mirrors: dict[str, tuple[str, ...]] = {}
    for channel, targets in value.items():
        entry = f'{key}["{channel}"]'
        canonical = str(channel).rstrip("/")
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(channel, str) or not is_url(canonical, None):
            ctx.report(entry, "must be a channel URL, such as https://conda.anaconda.org/conda-forge")
        elif canonical in mirrors:
            ctx.report(entry, f"'{canonical}' is listed twice (trailing slashes are ignored)")
        elif problem := _mirror_targets_problem(targets):
            ctx.report(entry, problem)
        else:
            mirrors[canonical] = tuple(t.rstrip("/") for t in targets)
    return mirrors


def _mirror_targets_problem(targets: Any) -> str | None:
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        return f"expected a mirror URL or a non-empty list of them, got {describe(targets)}"
    for target in targets:
        if not is_url(target, ("http", "https")):
            return f"mirror '{target}' must be an http:// or https:// URL (serve local folders over HTTP)"
    return None


def _sources(value: Any, tp: Any, key: str, ctx: Context) -> tuple[SourceSettings, ...]:
    converted = convert_items(value, tp, key, ctx)
    _report_taken_names(converted, key, ctx, "source")
    return tuple(converted.values())


def _report_taken_names(items: dict[int, Any], key: str, ctx: Context, what: str, *, skip_failed: bool = False) -> None:
    """Report each item whose ``name`` an earlier item of the list already has."""
    first_use: dict[str, int] = {}
    for index, item in items.items():
        if skip_failed and ctx.failed_under(f"{key}[{index}]"):
            continue
        if item.name in first_use:
            first = f"{key}[{first_use[item.name]}]"
            ctx.report(
                f"{key}[{index}].name", f"'{item.name}' is already the name of {first}; give each {what} its own 'name'"
            )
        first_use.setdefault(item.name, index)


def _source(value: Any, tp: Any, key: str, ctx: Context) -> SourceSettings:
    if not isinstance(value, dict):
        raise Invalid(f"expected a mapping with 'directory' or 'git', got {describe(value)}")
    kinds = [k for k in ("directory", "git") if value.get(k) is not None]
    if len(kinds) != 1:
        raise Invalid("set exactly one of 'directory' and 'git'" + ("; both are set" if kinds else ""))
    data, kind = dict(value), kinds[0]
    if data.get("name") is None and isinstance(data[kind], str) and data[kind]:
        data["name"] = _derived_name(kind, data[kind], ctx)
        if problem := name_problem(data["name"]):
            ctx.report(f"{key}.name", f"{problem} (derived from '{kind}'); set 'name'")
            raise Skip
    return convert_section(SourceSettings, data, key, ctx)


def _derived_name(kind: str, location: str, ctx: Context) -> str:
    """The folder's name, or the repository's without ``.git``."""
    if kind == "git" and is_remote(location):
        return re.split(r"[/:]", location.rstrip("/"))[-1].removesuffix(".git")
    name = ctx.path(location).name
    return name.removesuffix(".git") if kind == "git" else name


def _git_location(value: Any, tp: Any, key: str, ctx: Context) -> str:
    text = by_type(value, tp, key, ctx)
    return text if is_remote(text) else str(ctx.path(text))


def _visibility(value: Any, tp: Any, key: str, ctx: Context) -> dict[str, tuple[str, ...] | None]:
    """``{namespace: public | [token, ...]}``; ``public`` is stored as None."""
    if not isinstance(value, dict):
        raise Invalid(ctx.expected(tp, key, value))
    visibility: dict[str, tuple[str, ...] | None] = {}
    for namespace, who in value.items():
        entry = f"{key}.{namespace}"
        if not isinstance(namespace, str):
            ctx.report(entry, "must be a namespace name")
        elif problem := name_problem(namespace):
            ctx.report(entry, problem)
        elif who == PUBLIC:
            visibility[namespace] = None
        elif not isinstance(who, list) or not who or not all(isinstance(t, str) for t in who):
            ctx.report(entry, f"expected '{PUBLIC}' or a non-empty list of tokens, got {_describe_secret(who)}")
        elif problem := next(filter(None, map(web_token_problem, who)), None):
            ctx.report(entry, problem)
        else:
            visibility[namespace] = tuple(dict.fromkeys(who))
    return visibility


def _describe_secret(value: Any) -> str:
    """Like ``describe``, without repeating a string that may be a token."""
    return "a string" if isinstance(value, str) else describe(value)


def _push_target(value: Any, tp: Any, key: str, ctx: Context) -> PushTargetSettings:
    """``builtin`` or a mapping; an external target is named after its URL's host by default."""
    if value == BUILTIN_TARGET:
        return PushTargetSettings()
    if not isinstance(value, dict):
        raise Invalid(f"expected '{BUILTIN_TARGET}' or a mapping with 'url', got {describe(value)}")
    data = dict(value)
    if data.get("name") is None and isinstance(data.get("url"), str) and data["url"]:
        data["name"] = (urlsplit(registry_url(data["url"])).netloc or data["url"]).replace(":", "-")
    return convert_section(PushTargetSettings, data, key, ctx)


def _push_targets(value: Any, tp: Any, key: str, ctx: Context) -> tuple[PushTargetSettings, ...]:
    converted = convert_items(value, tp, key, ctx)
    _report_taken_names(converted, key, ctx, "target", skip_failed=True)
    if sum(t.builtin for t in converted.values()) > 1:
        ctx.report(key, f"lists the built-in registry more than once; keep one '{BUILTIN_TARGET}'")
    if len(converted) < len(value):
        raise Skip
    return tuple(converted.values())


_DURATION = "duration"
_SIZE = "size"
_DAY = 86400
KEY_RULES: dict[str, KeyRule] = {
    "database": KeyRule("A known SQLAlchemy dialect; relative SQLite paths resolve like `store`.", convert=_database),
    "sources": KeyRule("Names must be unique.", convert=_sources),
    "sources[]": KeyRule("Exactly one of `directory` and `git`.", type="source", convert=_source),
    "sources[].name": KeyRule("A valid name (letters, digits, `.`, `_`, `-`).", check=name_problem),
    "sources[].git": KeyRule("Relative local paths resolve like `store`.", convert=_git_location),
    "sources[].default_namespace": KeyRule("A valid namespace name.", check=name_problem),
    "sources[].interval": KeyRule(
        "From 0.1s to 7 days.", type=_DURATION, convert=_duration, check=duration_within(0.1, 7 * _DAY)
    ),
    "sources[].change_grace": KeyRule(
        "0 to 365 days.", type=_DURATION, convert=_duration, check=duration_within(0, 365 * _DAY)
    ),
    "sources[].change_refspecs": KeyRule("Ref globs such as `refs/pull/*/head`. Only with `git`."),
    "sources[].username": KeyRule("Only with an http(s) `git` URL."),
    "sources[].password_env": KeyRule(
        "Only with an http(s) `git` URL; not with `password_file`. The value is never logged.",
        check=variable_name_problem,
    ),
    "sources[].password_file": KeyRule("Only with an http(s) `git` URL. Trailing newlines are ignored."),
    "sources[].ssh_key_file": KeyRule("Only with an ssh `git` URL."),
    "sources[].ssh_known_hosts": KeyRule("Only with an ssh `git` URL; host keys are checked strictly."),
    "sources[].mirror_dir": KeyRule("Only with `git`; relative paths resolve like `store`."),
    "sources[].status_api": KeyRule(
        "Only with `git`; needs `status_repo` and one of `status_token_env` and `status_token_file`.",
        check=status_api_problem,
    ),
    "sources[].web_url": KeyRule("An http(s) URL. Only with `git`.", check=http_url_problem),
    "sources[].status_url": KeyRule("An http(s) URL; required for `gitlab` and `gitea`.", check=http_url_problem),
    "sources[].status_repo": KeyRule("Required with `status_api`."),
    "sources[].status_token_env": KeyRule(
        "Not with `status_token_file`. The value is never logged.", check=variable_name_problem
    ),
    "sources[].status_token_file": KeyRule("Trailing newlines are ignored. The value is never logged."),
    "sources[].status_context": KeyRule("Not empty.", check=not_blank),
    "sources[].status_target_url": KeyRule("An http(s) URL.", check=http_url_problem),
    "sources[].webhook_secret_env": KeyRule(
        "Only with `git`; not with `webhook_secret_file`. The value is never logged.", check=variable_name_problem
    ),
    "sources[].webhook_secret_file": KeyRule(
        "Only with `git`. Trailing newlines are ignored. The value is never logged."
    ),
    "sources[].updates.schedule": KeyRule("An interval or a five-field cron expression (UTC).", check=schedule_problem),
    "sources[].updates.environments": KeyRule("At least one glob.", check=not_empty),
    "sources[].updates.cooldown": KeyRule(
        "0 to 365 days: `7d`, `12h`.", type=_DURATION, convert=_duration, check=duration_within(0, 365 * _DAY)
    ),
    "sources[].updates.group": KeyRule("`environment` or `namespace`.", check=update_group_problem),
    "sources[].updates.branch_prefix": KeyRule("A valid start of a Git branch name.", check=branch_prefix_problem),
    "sources[].updates.author": KeyRule("`Name <email>`.", check=author_problem),
    "sources[].updates.pull_requests": KeyRule("True needs a Git source with `status_api` (the forge)."),
    "channels.default": KeyRule("At least one channel.", check=not_empty),
    "channels.mirrors": KeyRule(
        "A single mirror may be a string. Mirrors must be http(s) URLs; trailing slashes are removed.",
        type="mapping of channel URL to list of mirror URLs",
        convert=_mirrors,
    ),
    "platforms": KeyRule("At least one; each one of " + ", ".join(KNOWN_PLATFORMS) + ".", check=not_empty),
    "platforms[]": KeyRule(type="platform", check=platform_problem),
    "build.concurrency": KeyRule("From 1 to 1024.", check=between(1, 1024)),
    "build.retries": KeyRule("From 0 to 100.", check=between(0, 100)),
    "build.backoff": KeyRule(
        "From 0.1s to 1 day.", type=_DURATION, convert=_duration, check=duration_within(0.1, _DAY)
    ),
    "build.backoff_max": KeyRule(
        "At least `build.backoff`, at most 30 days.",
        type=_DURATION,
        convert=_duration,
        check=duration_within(0.1, 30 * _DAY),
    ),
    "build.timeout": KeyRule(
        "From 1s to 7 days.", type=_DURATION, convert=_duration, check=duration_within(1, 7 * _DAY)
    ),
    "build.lease": KeyRule("From 3s to 1 hour.", type=_DURATION, convert=_duration, check=duration_within(3, 3600)),
    "reconcile.full_check": KeyRule(
        "From 0 (every pass is a full check) to 1 day: `5m`, `300`.",
        type=_DURATION,
        convert=_duration,
        check=duration_within(0, _DAY),
    ),
    "web.listen": KeyRule("Port 1-65535; IPv6 hosts in brackets, e.g. `[::1]:8080`.", check=listen_problem),
    "web.page_cache": KeyRule("From 0 to 1000000.", check=between(0, 1_000_000)),
    "registry.push_tokens[]": KeyRule(type="token", check=push_token_problem),
    "registry.push_tokens": KeyRule(f"Each at least {PUSH_TOKEN_MIN_LENGTH} characters, no spaces."),
    "registry.push_token_file": KeyRule("Must exist; each token as in `registry.push_tokens`.", check=file_problem),
    "registry.push": KeyRule(
        "Each item is `builtin` (the built-in registry) or a mapping for an external registry: `url` "
        "(`host[:port]` or `https://host`), `name` (default: the host), `repository` (prefix: images go to "
        "`<repository>/<ns>/<name>`), `username` with `password_env` or `password_file` (a password or access "
        "token, never logged; without `username` it is sent as a bearer token) and `insecure` (plain HTTP). "
        "Names must be unique; an empty list pushes nowhere. Registries without the referrers API get the "
        "artifacts listed under the OCI referrers tag `sha256-<hex of the image digest>`.",
        type="list of push targets",
        convert=_push_targets,
    ),
    "registry.push[]": KeyRule(type="push target", convert=_push_target),
    "registry.push[].name": KeyRule(check=name_problem),
    "registry.push[].url": KeyRule(check=registry_url_problem),
    "registry.push[].repository": KeyRule(check=repository_prefix_problem),
    "registry.push[].password_env": KeyRule(check=variable_name_problem),
    "publish.pack_format": KeyRule(check=pack_format_problem),
    "publish.image_prefix": KeyRule("An absolute path such as `/opt/env`.", check=image_prefix_problem),
    "publish.image_base": KeyRule(
        "A full reference including the registry host, or `scratch`.", check=image_base_problem
    ),
    "publish.layer_compression": KeyRule(check=layer_compression_problem),
    "publish.layer_budget": KeyRule(f"Between 2 and {LAYER_BUDGET_MAX}.", check=layer_budget_problem),
    "publish.squashfs_compression": KeyRule(check=squashfs_compression_problem),
    "kernels.display_name": KeyRule("May use `{name}` and `{namespace}`.", check=display_name_problem),
    "modules.format": KeyRule(check=module_format_problem),
    "policy.site_file": KeyRule("Must exist; the format of `condaops-policy.yaml`.", check=file_problem),
    "publish.signing.key_file": KeyRule(
        "Must exist. Make one with `openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 "
        "-v2 aes-256-cbc -out cosign.key` (see docs/supply-chain.md).",
        check=file_problem,
    ),
    "publish.signing.password_env": KeyRule("Not with `password_file`.", check=variable_name_problem),
    "publish.signing.password_file": KeyRule("Must exist.", check=file_problem),
    "publish.signing.public_key_file": KeyRule(
        "Must exist; make it with `openssl ec -in cosign.key -pubout -out cosign.pub`.", check=file_problem
    ),
    "publish.signing.previous_keys[]": KeyRule(type="file", check=file_problem),
    "dynamic.max_packages": KeyRule("From 1 to 100.", check=between(1, 100)),
    "dynamic.concurrency": KeyRule("From 1 to 64.", check=between(1, 64)),
    "dynamic.queue": KeyRule("From 0 to 10000.", check=between(0, 10_000)),
    "dynamic.rate": KeyRule("From 1 to 100000 per minute.", check=between(1, 100_000)),
    "dynamic.keep": KeyRule("From 0 to 1000000.", check=between(0, 1_000_000)),
    "registry.max_blob_size": KeyRule(
        "From 1MiB to 1TiB.", type=_SIZE, convert=_size, check=size_within(1024**2, 1024**4)
    ),
    "registry.max_uploads": KeyRule("From 1 to 100000.", check=between(1, 100_000)),
    "registry.upload_max_age": KeyRule(
        "From 1 minute to 30 days.", type=_DURATION, convert=_duration, check=duration_within(60, 30 * _DAY)
    ),
    "registry.gc_interval": KeyRule(
        "0 (off) or from 1 minute to 7 days.",
        type=_DURATION,
        convert=_duration,
        check=duration_within(60, 7 * _DAY, zero=True),
    ),
    "min_free_space": KeyRule("From 0 to 1PiB.", type=_SIZE, convert=_size, check=size_within(0, 1024**5)),
    "storage.backend": KeyRule(check=backend_problem),
    "storage.s3_bucket": KeyRule("Required when `backend` is `s3`."),
    "storage.s3_endpoint": KeyRule("An http(s) URL.", check=endpoint_problem),
    "storage.s3_url_expiry": KeyRule("At most 7 days.", type=_DURATION, convert=_duration, check=expiry_problem),
    "web.auth.tokens[]": KeyRule(type="token", check=web_token_problem),
    "web.auth.tokens": KeyRule(f"Each at least {WEB_TOKEN_MIN_LENGTH} characters, no spaces."),
    "web.auth.namespaces": KeyRule(
        "Namespaces not listed are readable by everyone when `tokens` is empty, else by `tokens` only.",
        type=f"mapping of namespace to `{PUBLIC}` or list of tokens",
        convert=_visibility,
    ),
}
