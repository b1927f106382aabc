"""An update pull request's title, body and commit message. Pure: plain data in, text out.

The body is what IT reads instead of a lockfile diff: per environment, the package
changes per platform in the same tables as a change-request review (folded per
platform), what the cooldown held back, and how condaops treats the branch. It starts
with a hidden marker naming the source and branch, so the pull request is recognised as
condaops' own even without the state DB.
"""

from __future__ import annotations

from collections.abc import Sequence

from condaops.reconciler.changereqs.render import diff_lines
from condaops.reconciler.pkgdiff import UPGRADED
from condaops.reconciler.updates.plan import TRAILER, EnvUpdate, Proposal


def update_marker(source: str, branch: str) -> str:
    return f"<!-- condaops-update source={source} branch={branch} -->"


def title(proposal: Proposal) -> str:
    """``condaops: update team/app (tool 1.0 → 2.0)``; several changes are counted."""
    changes = [c for u in proposal.updates for d in u.diffs.values() for c in d.changes]
    names = sorted({c.name for c in changes})
    if len(proposal.updates) == 1:
        what = str(proposal.updates[0].ref)
    else:
        namespaces = sorted({u.ref.namespace for u in proposal.updates})
        what = f"{namespaces[0] if len(namespaces) == 1 else 'environments'} ({len(proposal.updates)} environments)"
    if len(changes) == 1 and changes[0].kind == UPGRADED and changes[0].old and changes[0].new:
        return f"condaops: update {what}: {names[0]} {changes[0].old.version} → {changes[0].new.version}"
    return f"condaops: update {what}: {len(names)} package{'s' if len(names) != 1 else ''}"


def body(source: str, proposal: Proposal, *, cooldown: float, branch_url: str | None = None) -> str:
    waited = f" (cooldown: versions at least {age_text(cooldown)} old)" if cooldown else ""
    lines = [
        update_marker(source, proposal.branch),
        f"### condaops: new locks for {', '.join(f'`{r}`' for r in proposal.refs)}",
        "",
        f"condaops solved these environments again with the site's channels{waited} and found newer "
        "packages. Only the lockfiles change; the environment files do not. Merging builds exactly "
        "the packages below.",
    ]
    for update in proposal.updates:
        lines += ["", *_env_lines(update)]
    where = f" ([{proposal.branch}]({branch_url}))" if branch_url else f" (`{proposal.branch}`)"
    lines += [
        "",
        "---",
        f"This branch{where} is managed by condaops: it is replaced when newer packages appear, and "
        "this pull request is closed when nothing is left to update. Once someone else pushes to the "
        "branch, condaops leaves it alone.",
    ]
    return "\n".join(lines) + "\n"


def age_text(seconds: float) -> str:
    """``3 days``, ``12 hours``, ``90 minutes``."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} seconds"


def _env_lines(update: EnvUpdate) -> list[str]:
    lines = [f"#### `{update.ref}` (`{update.lock_path}`, for `{update.spec_path}`)"]
    lines += diff_lines(update.diffs)
    if update.held:
        lines += ["", f"Not yet proposed (newer than the cooldown): {', '.join(update.held)}."]
    return lines


def commit_message(proposal: Proposal, summary: str) -> str:
    files = "\n".join(f"* {u.lock_path}" for u in proposal.updates)
    return f"{summary}\n\n{files}\n\n{TRAILER}: {proposal.branch}\n"


def held_note(source: str, branch: str, message: str) -> str:
    """The comment condaops leaves when it stops touching a branch."""
    return f"<!-- condaops-update-note source={source} branch={branch} -->\n**condaops**: {message}\n"


def closed_note(message: str, refs: Sequence[str]) -> str:
    return f"**condaops** closes this pull request: {message} ({', '.join(refs) or 'no environment'})."
