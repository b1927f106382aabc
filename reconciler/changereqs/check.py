"""The CI check: review a change on a clone, a CI checkout or a remote repository.

``condaops check`` (and the older ``condaops plan --git``) run here, with no server: what
a CI job has is a working tree with a detached ``HEAD``, the target only as
``refs/remotes/origin/main``, often shallow (``--depth 1``). So:

* ``--git`` a local path is read in place with dulwich (work tree or bare repository);
  names resolve as ``git rev-parse`` does (``HEAD``, ``origin/main``, full refs, SHAs);
  a URL is fetched into a temporary mirror;
* the merge base of head and target is what the head is compared with; in a shallow
  clone that lacks it, history is fetched from the clone's remote by the clone's own
  ``git fetch --deepen`` in growing steps, or the check says exactly what to fetch;
* the sub-folder and channels come from the configured source of that repository (by
  URL, or ``--source NAME``); ``--path`` overrides;
* a tree with no environment file at that path, on either side, is an error naming the
  folders that do hold environment files — never "no changes".
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from dulwich.config import Config
from dulwich.errors import NotGitRepository
from dulwich.repo import Repo

from condaops.config import Settings, SourceSettings
from condaops.reconciler.changereqs.compare import HISTORY_TOO_SHALLOW, MERGE_BASE_MISSING, ChangeReport
from condaops.reconciler.changereqs.review import ReviewInput, review
from condaops.reconciler.changereqs.solvecache import SolveCache
from condaops.reconciler.errors import CondaopsError, SourceError
from condaops.reconciler.hooks import normalize_repo_url
from condaops.reconciler.model import SourceSnapshot
from condaops.reconciler.reasons import Reason
from condaops.reconciler.sources.githistory import commit_info, file_text, history_depth, merge_base, resolve
from condaops.reconciler.sources.gitsnap import snapshot_at, spec_folders
from condaops.reconciler.sources.gittree import SpecCache

if TYPE_CHECKING:
    from condaops.reconciler.sources.git import GitSource

_T = TypeVar("_T")
log = logging.getLogger("condaops.check")

NO_ENVIRONMENTS = Reason.NO_ENVIRONMENT_FILES  # the chosen folder holds no environment file on either side
REF_UNKNOWN = Reason.REF_UNKNOWN  # a name given to the check does not resolve to a commit
DEEPEN_STEPS = (50, 500, 5000)  # commits of history fetched per attempt in a shallow clone
FETCH_SECONDS = 300  # one deepening fetch; a hung remote then gives the "fetch more history" error


class CheckError(CondaopsError):
    """The check cannot review this change (exit 2); the message says what to do."""

    reason = Reason.CHECK_FAILED


@dataclass(frozen=True, slots=True)
class CheckRequest:
    git: str = "."
    ref: str = "HEAD"
    base: str | None = None  # default: the source's branch, as the clone has it
    path: str | None = None  # default: the configured source's path
    source: str | None = None  # the configured source to take settings from
    fetch: bool = True  # deepen a shallow clone from its remote when the merge base is missing


@dataclass(frozen=True, slots=True)
class _Sides:
    repo: Repo | GitSource  # where the commits are: a clone, or a source's mirror
    head: str
    target: str
    merge_base: str
    target_name: str


def check(settings: Settings, request: CheckRequest) -> ChangeReport:
    """Review ``request.ref`` against its merge base with the target; raises ``CheckError``."""
    source = chosen_source(settings, request)
    if request.path is not None:
        source = replace(source, path=request.path)
    with tempfile.TemporaryDirectory(prefix="condaops-check-") as tmp:
        if Path(request.git).exists():
            try:
                repo = Repo(request.git)
            except NotGitRepository:
                raise CheckError(f"{request.git} is not a Git repository; run the check in a clone") from None
            with repo:
                return _check_in(settings, request, source, repo, Path(tmp))
        return _check_remote(settings, request, source, Path(tmp))


def chosen_source(settings: Settings, request: CheckRequest) -> SourceSettings:
    """The configured source whose settings (path, namespace) apply: ``--source``, else the
    Git source with this repository's URL, else the only Git source, else defaults."""
    gits = [s for s in settings.sources if s.git is not None]
    if request.source is not None:
        named = [s for s in settings.sources if s.name == request.source]
        if not named:
            known = ", ".join(s.name for s in settings.sources) or "none"
            raise CheckError(f"no source named '{request.source}' in the configuration (sources: {known})")
        return named[0]
    urls = {normalize_repo_url(u) for u in _repo_urls(request.git)}
    matched = [s for s in gits if normalize_repo_url(s.git or "") in urls]
    if matched:
        return matched[0]
    if len(gits) == 1:
        log.info("check_source source=%s (the only Git source; use --source to choose)", gits[0].name)
        return gits[0]
    return SourceSettings(name="check", git=request.git, path="")


def _repo_urls(git: str) -> list[str]:
    """``git`` itself and, for a local clone, the URLs of its remotes."""
    urls = [git]
    if Path(git).exists():
        try:
            with Repo(git) as repo:
                config = repo.get_config()
                urls += [v.decode() for (kind, *_), v in _remote_urls(config) if kind == b"remote"]
        except (NotGitRepository, OSError, KeyError):
            pass
    return urls


def _remote_urls(config: Config) -> list[tuple[tuple[bytes, ...], bytes]]:
    out = []
    for section in config.sections():
        if section and section[0] == b"remote":
            try:
                out.append((section, config.get(section, b"url")))
            except KeyError:
                continue
    return out


# --- a local clone ---------------------------------------------------------------------------


def _check_in(settings: Settings, request: CheckRequest, source: SourceSettings, repo: Repo, tmp: Path) -> ChangeReport:
    head = _resolved(repo, request.ref, "--ref")
    target_name = request.base or _default_base(repo, source.branch)
    target = _resolved(repo, target_name, "--base")
    found = merge_base(repo, head, target)
    if found.sha is None and found.shallow and request.fetch:
        _deepen(repo, head, target, target_name)
        with Repo(repo.path) as deeper:  # a fresh view: dulwich's open repository misses the new history
            return _reviewed_in(settings, request, source, deeper, head, target, target_name, tmp)
    return _reviewed_in(settings, request, source, repo, head, target, target_name, tmp)


def _reviewed_in(
    settings: Settings,
    request: CheckRequest,
    source: SourceSettings,
    repo: Repo,
    head: str,
    target: str,
    target_name: str,
    tmp: Path,
) -> ChangeReport:
    found = merge_base(repo, head, target)
    if found.sha is None:
        raise _no_merge_base(repo, head, target, request.ref, target_name, found.shallow)
    return _review(settings, request, source, _Sides(repo, head, target, found.sha, target_name), tmp)


def _default_base(repo: Repo, branch: str) -> str:
    """What a CI checkout has of the source's branch: ``origin/<branch>``, else the branch."""
    for name in (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}"):
        if name.encode() in repo.refs:
            return name
    raise CheckError(
        f"the target branch '{branch}' is not in this clone (neither refs/remotes/origin/{branch} nor "
        f"refs/heads/{branch}): fetch it first (git fetch origin {branch}) or name it with --base"
    )


def _resolved(repo: Repo, name: str, option: str) -> str:
    sha = resolve(repo, name)
    if sha is None:
        refs = sorted(r.decode() for r in repo.refs.keys() if not r.startswith(b"refs/tags/"))[:12]
        raise CheckError(
            f"{option} {name} does not name a commit in this clone (refs here: {', '.join(refs) or 'none'}); "
            "fetch it first or pass a ref, branch, origin/<branch> or a full SHA",
            reason=REF_UNKNOWN,
        )
    return sha


def _deepen(repo: Repo, head: str, target: str, target_name: str) -> None:
    """Fetch more history from the clone's remote, in growing steps, until the merge base
    of ``head`` and ``target`` is in the clone (or the steps run out).

    The clone's own ``git`` does this, not dulwich: a CI checkout carries its credentials in
    its git config (``actions/checkout`` sets ``http.<url>.extraheader``), which only git
    reads, and dulwich's local transport (``file://`` remotes) dropped the shallow markers
    without fetching the parents, leaving a clone that ``git log`` could no longer read."""
    remote = target_name.removeprefix("refs/remotes/").split("/", 1)[0] if "/" in target_name else "origin"
    git = shutil.which("git")
    if git is None:
        log.warning("check_deepen_skipped remote=%s: no git on PATH", remote)
        return
    for depth in DEEPEN_STEPS:
        # by commit first: deepens exactly the two histories the merge base needs; a server
        # that refuses fetching by commit gets the remote's own refspec instead
        problem = _git_fetch([*_fetch(git, repo, depth), remote, head, target])
        if problem is not None:
            problem = _git_fetch([*_fetch(git, repo, depth), remote])
        if problem is not None:
            log.warning("check_deepen_failed remote=%s depth=%d %s", remote, depth, problem)
            return
        log.info("check_deepened remote=%s depth=%d", remote, depth)
        with Repo(repo.path) as fresh:
            found = merge_base(fresh, head, target)
        if found.sha is not None or not found.shallow:
            return


def _fetch(git: str, repo: Repo, depth: int) -> list[str]:
    return [git, "-C", repo.path, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", f"--deepen={depth}"]


def _git_fetch(argv: list[str]) -> str | None:
    """None when the fetch worked, else git's last line of complaint (never credentials:
    git does not print them)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=FETCH_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        return f"no answer in {FETCH_SECONDS} s"
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]


def _no_merge_base(repo: Repo, head: str, target: str, ref: str, target_name: str, shallow: bool) -> CheckError:
    if shallow:
        return CheckError(
            f"this clone is shallow: {ref} has {history_depth(repo, head)} commit(s) of history here and "
            f"{target_name} {history_depth(repo, target)}, and their merge base is not among them; fetch more "
            f"history (git fetch --deepen=200 origin, or fetch-depth: 0 in actions/checkout, GIT_DEPTH: 0 in "
            f"GitLab CI) and run again",
            reason=HISTORY_TOO_SHALLOW,
        )
    return CheckError(
        f"{ref} ({head[:12]}) and {target_name} ({target[:12]}) share no history (a fork with rewritten "
        "history?): rebase the change onto the target",
        reason=MERGE_BASE_MISSING,
    )


# --- a remote repository -----------------------------------------------------------------------


def _check_remote(settings: Settings, request: CheckRequest, source: SourceSettings, tmp: Path) -> ChangeReport:
    from condaops.reconciler.sources.git import GitSource

    branch = request.base or source.branch
    for prefix in ("refs/heads/", "refs/remotes/origin/", "origin/"):
        branch = branch.removeprefix(prefix)
    remote = replace(source, name=source.name, git=request.git, branch=branch, mirror_dir=None)
    with GitSource(remote, cache_dir=tmp) as git:
        target_snap = _ok(git.read(force=True), f"branch '{branch}'")
        ref = request.ref if request.ref.startswith("refs/") or request.ref == "HEAD" else f"refs/heads/{request.ref}"
        head_snap = _ok(git.read_ref(ref), f"ref '{request.ref}'")
        head, target = head_snap.revision or "", target_snap.revision or ""
        found = git.history(lambda repo: merge_base(repo, head, target))
        if found.sha is None:
            raise git.history(lambda repo: _no_merge_base(repo, head, target, request.ref, branch, False))
        sides = _Sides(git, head, target, found.sha, branch)
        return _review(settings, request, remote, sides, tmp)


def _ok(snap: SourceSnapshot, what: str) -> SourceSnapshot:
    if snap.error:
        raise SourceError(f"cannot read {what}: {snap.error}", reason=snap.error_reason or Reason.SOURCE_UNREADABLE)
    return snap


# --- both ------------------------------------------------------------------------------------


def _review(
    settings: Settings, request: CheckRequest, source: SourceSettings, sides: _Sides, tmp: Path
) -> ChangeReport:
    ask = _asker(sides.repo)
    cache = SpecCache()
    snaps = {sha: ask(partial(_snapshot, sha=sha, source=source, cache=cache)) for sha in _distinct(sides)}
    head, base = snaps[sides.head], snaps[sides.merge_base]
    if not head.envs and not head.rejections and not base.envs and not base.rejections:
        raise _nothing_there(source, sides, ask)
    info = ask(lambda repo: commit_info(repo, sides.head))
    root = [p for p in source.path.split("/") if p not in ("", ".")]
    given = ReviewInput(
        request.ref,
        snaps[sides.target],
        base,
        head,
        head_commit=info.to_data() if info else None,
        texts=lambda rev, path: ask(lambda repo: file_text(repo, rev, "/".join([*root, path]))),
    )
    report = review(settings, given, cache=SolveCache(), repodata=tmp / "repodata")
    log.info(
        "check_reviewed head=%s merge_base=%s target=%s", sides.head[:12], sides.merge_base[:12], sides.target[:12]
    )
    return report


def _snapshot(repo: Repo, *, sha: str, source: SourceSettings, cache: SpecCache) -> SourceSnapshot:
    return snapshot_at(repo, sha, source, cache)


def _distinct(sides: _Sides) -> list[str]:
    return list(dict.fromkeys((sides.target, sides.merge_base, sides.head)))


class _Ask(Protocol):
    """Asks a question of the repository: ``ask(lambda repo: ...)`` gives the answer."""

    def __call__(self, question: Callable[[Repo], _T]) -> _T: ...


def _asker(repo: Repo | GitSource) -> _Ask:
    if isinstance(repo, Repo):
        return lambda question: question(repo)
    return repo.history  # a GitSource: its mirror, under its lock


def _nothing_there(source: SourceSettings, sides: _Sides, ask: _Ask) -> CheckError:
    where = f"'{source.path}'" if source.path.strip("/.") else "the repository root"
    folders = ask(lambda repo: spec_folders(repo, sides.head))
    hint = (
        f"; environment files are under: {', '.join(folders)} (pass --path, or set 'path' of the source"
        f"{' ' + repr(source.name) if source.name != 'check' else ''})"
        if folders
        else "; no folder of this commit holds one (environments are <folder>/<ns>/<name>.yaml)"
    )
    return CheckError(
        f"no environment file in {where} at {sides.head[:12]} or {sides.merge_base[:12]}{hint}", reason=NO_ENVIRONMENTS
    )
