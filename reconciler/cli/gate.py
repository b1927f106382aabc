"""Commands for working trees and CI: ``check``, ``lock``, ``update``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from condaops.config import Settings
from condaops.reconciler.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, say

if TYPE_CHECKING:
    from condaops.reconciler.changereqs.compare import ChangeReport


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    """The CI gate: 0 when every changed environment solves and breaks no blocking policy
    rule (warnings allowed), 1 on a blocking violation, 2 when an environment or a policy
    file is broken (or, raised, when the check cannot run)."""
    report = check_change(settings, args, "json" if args.json else args.format)
    if report.has_errors or report.policy_invalid:
        return EXIT_ERROR
    return EXIT_CHANGES if report.has_violations else EXIT_OK


def check_change(settings: Settings, args: argparse.Namespace, fmt: str) -> ChangeReport:
    """Review the change ``args`` name against its merge base; print the review."""
    from condaops.reconciler.changereqs.check import CheckRequest, check
    from condaops.reconciler.changereqs.render import KIND_WORDS, render_report

    request = CheckRequest(
        git=args.git,
        ref=args.ref or "HEAD",
        base=args.base,
        path=args.path,
        source=args.source,
        fetch=not args.no_fetch,
    )
    report = check(settings, request)
    print(render_report(report, "json" if fmt == "json" else "markdown"))
    counts = ", ".join(f"{n} {KIND_WORDS.get(k, k)}" for k, n in report.counts().items()) or "no environment changes"
    blocked = sum(1 for e in report.changed if e.blocked)
    policy = f"; {blocked} break a blocking policy rule" if blocked else ""
    say(f"{request.ref} ({(report.head_revision or '')[:12]}): {counts}{policy}")
    sys.stderr.flush()
    return report


def cmd_lock(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.lockcommand import run_lock_command

    return run_lock_command(settings, args)


def cmd_update(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.updates.service import run_update_command

    return run_update_command(settings, args)
