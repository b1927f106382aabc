"""Reading policy files: the site's (``policy.site_file``) and a source's, per environment.

The IO edge of the policy: YAML text to ``PolicyDoc`` (``rules.parse_policy`` validates;
match specs are checked with rattler here), then each desired environment of a snapshot
gets its effective rules as canonical JSON (``DesiredEnv.policy``), which the plan
compares with the policy its last build was checked against.

An invalid file (YAML errors, unknown keys, a bad match spec, unreadable) never lets a
build through unchecked: the environments it governs get rules whose ``invalid`` names
the file and the problem, and their builds fail with ``PolicyInvalid`` (the linked build
stays). An invalid *site* file does the same to every environment.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from condaops.config.settings import Settings
from condaops.reconciler.model import PolicyFile, SourceSnapshot
from condaops.reconciler.policy.rules import PolicyDoc, PolicyFileError, merge, parse_policy
from condaops.reconciler.sources.layout import policy_scope

MAX_POLICY_BYTES = 1 << 20


Resolve = Callable[[str], Sequence[str]]  # a channel name to its canonical URLs


def parse_policy_bytes(data: bytes, *, origin: str, resolve: Resolve) -> PolicyDoc:
    """One policy file's bytes as a ``PolicyDoc``; raises ``PolicyFileError``."""
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyFileError(f"{origin}: {len(data)} bytes, over the {MAX_POLICY_BYTES} byte limit")
    try:
        loaded = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise PolicyFileError(f"{origin}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise PolicyFileError(f"{origin}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    doc = parse_policy(loaded, origin=origin, resolve_channel=resolve)
    # rattler only when a policy file is read: a tree without one (``condaops plan``) skips it
    from rattler import MatchSpec
    from rattler.exceptions import InvalidMatchSpecError

    for kind in ("deny", "require"):
        for index, rule in enumerate(getattr(doc, kind) or ()):
            try:
                MatchSpec(rule.spec)
            except InvalidMatchSpecError as exc:
                raise PolicyFileError(
                    f"{origin}: key 'packages.{kind}[{index}].spec': '{rule.spec}' is not a match spec: {exc}"
                ) from None
    return doc


def site_policy(settings: Settings, resolve: Resolve) -> tuple[list[PolicyDoc], list[str]]:
    """The site's rules (``policy.site_file``) and the problems reading them (one line each)."""
    path = settings.policy.site_file
    if path is None:
        return [], []
    try:
        stat = path.stat()
        return [_cached_site_doc(path, stat.st_mtime_ns, stat.st_size, settings.channels.alias, resolve)], []
    except OSError as exc:
        return [], [f"{path}: cannot be read ({exc.strerror or exc}); fix policy.site_file"]
    except PolicyFileError as exc:
        return [], [str(exc)]


@functools.lru_cache(maxsize=4)
def _cached_site_doc(path: Path, _mtime_ns: int, _size: int, _alias: str, resolve: Resolve) -> PolicyDoc:
    """Read again only when the file (or the channel alias) changes: every pass asks."""
    return parse_policy_bytes(path.read_bytes(), origin=f"site policy {path}", resolve=resolve)


def source_policies(files: Sequence[PolicyFile], *, resolve: Resolve) -> tuple[dict[str, PolicyDoc], dict[str, str]]:
    """A source's policy files by scope (``""`` the root, else the namespace), and the
    problems of invalid ones by scope."""
    docs: dict[str, PolicyDoc] = {}
    problems: dict[str, str] = {}
    for f in sorted(files, key=lambda f: f.path):
        scope = policy_scope(f.path)
        if scope is None:
            continue
        if scope in docs or scope in problems:
            docs.pop(scope, None)
            problems[scope] = f"{f.path}: a second policy file for the same folder; keep one of .yaml and .yml"
            continue
        try:
            if f.data is None:
                raise PolicyFileError(f"{f.path}: {f.problem or 'cannot be read'}")
            docs[scope] = parse_policy_bytes(f.data, origin=f.path, resolve=resolve)
        except PolicyFileError as exc:
            problems[scope] = str(exc)
    return docs, problems


def with_policies(snapshot: SourceSnapshot, settings: Settings, resolve: Resolve) -> SourceSnapshot:
    """The snapshot with each environment's effective policy set (None when no rule applies);
    ``resolve`` turns the channel names of policy files into canonical URLs."""
    site, site_problems = site_policy(settings, resolve)
    docs, problems = source_policies(snapshot.policy_files, resolve=resolve)
    envs = []
    for env in snapshot.envs:
        ns = env.ref.namespace
        rules = merge(site, docs.get(""), docs.get(ns))
        invalid = [*site_problems, *(problems[s] for s in ("", ns) if s in problems)]
        if invalid:
            rules = replace(rules, invalid=tuple(invalid))
        envs.append(replace(env, policy=None if rules.empty else rules.to_json()))
    return replace(snapshot, envs=tuple(envs))
