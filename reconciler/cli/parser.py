"""The ``condaops`` argument parser: commands, their options and shell completion.

Imports nothing beyond the standard library (``condaops --help`` must be instant).
The global options (``--config``, ``--log-level``) are accepted before or after the
command: every sub-parser repeats them with suppressed defaults, so a value given on
either side survives, and ``global_defaults`` fills in the rest.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

LOG_LEVELS = ("debug", "info", "warning", "error")
GLOBAL_DEFAULTS: dict[str, object] = {"config": None, "log_level": "info"}
JSON_HELP = "print JSON instead of a table (docs/cli.md describes the fields)"


class _VersionAction(argparse.Action):
    """``--version``: the installed package's version, read only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("condaops")
        except PackageNotFoundError:  # run from a source tree that was never installed
            found = "unknown (not installed)"
        print(f"condaops {found}")
        parser.exit()


def _add_globals(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="settings file (default: $CONDAOPS_CONFIG, else ./condaops.yaml if present)",
    )
    p.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS, help="default: info")


def global_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in the global options nobody gave (before or after the command)."""
    for name, value in GLOBAL_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    return args


def build_parser(complete_environments: Callable[..., object] | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``complete_environments`` completes ``NS/NAME`` arguments
    (argcomplete calls it only while completing)."""
    p = argparse.ArgumentParser(
        prog="condaops",
        description="GitOps for conda environments.",
        epilog="Every command takes --config and --log-level before or after it. See docs/cli.md.",
    )
    p.add_argument("--version", action=_VersionAction)
    _add_globals(p)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help, description=help)
        _add_globals(parser)
        return parser

    def environment(parser: argparse.ArgumentParser, **kwargs: object) -> None:
        arg = parser.add_argument(metavar="NS/NAME", **kwargs)  # type: ignore[arg-type]  # argparse's stubs type each keyword; these are add_argument's own
        if complete_environments is not None:
            arg.completer = complete_environments  # type: ignore[attr-defined]  # argcomplete reads a completer attribute argparse does not declare

    _service_commands(command)

    pl = command("plan", "show what a reconcile would change (0 none, 1 changes, 2 error)")
    pl.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    pl.add_argument("--json", action="store_true", help="the same as --format json")
    pl.add_argument("--git", metavar="URL_OR_PATH", help="review a change of this repository instead (as `check`)")
    _check_options(pl, git_default=None)

    ck = command(
        "check",
        "CI gate of a change: solve what it changes against its merge base and check its policy "
        "(0 pass, 1 a blocking policy violation, 2 a broken environment or policy file, or an error)",
    )
    ck.add_argument("--format", choices=["markdown", "json"], default="markdown")
    ck.add_argument("--json", action="store_true", help="the same as --format json")
    ck.add_argument("--git", metavar="URL_OR_PATH", default=".", help="the repository: a clone (default .) or a URL")
    _check_options(ck, git_default=".")

    st = command("status", "show the state of every environment (or of those named)")
    st.add_argument("--json", action="store_true", help=JSON_HELP)
    environment(st, dest="environments", nargs="*")

    h = command("history", "list the builds of one environment: when, how long, from which revision")
    environment(h, dest="environment")
    h.add_argument("--json", action="store_true", help=JSON_HELP)

    rb = command("rollback", "link an earlier build of an environment")
    environment(rb, dest="environment")
    rb.add_argument("build_id", type=int)

    rt = command("retire", "retire an environment whose file is gone: unlink it, drop its image's latest tag")
    environment(rt, dest="environment")
    rt.add_argument("--note", default="", help="why, recorded with the retirement")

    ch = command("changes", "show the recorded reviews of open change requests")
    ch.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    ch.add_argument("--json", action="store_true", help="the same as --format json")
    ch.add_argument("--source", help="only this source")
    ch.add_argument("--ref", help="only this ref (e.g. refs/pull/7/head)")

    _lock_command(command)

    up = command("update", "run the update check of sources with `updates` now (pull requests, reports)")
    up.add_argument("--source", action="append", default=[], help="only this source (repeatable)")
    up.add_argument("--json", action="store_true", help="print each source's run as JSON (checked, decisions, error)")

    g = command(
        "gc",
        "remove old build prefixes (never the current build, never lockfiles), abandoned "
        "registry uploads and dynamic images beyond dynamic.keep",
    )
    g.add_argument("--keep", type=int, default=2, help="previous builds to keep per environment (default 2)")
    g.add_argument("--dry-run", action="store_true")
    g.add_argument("--json", action="store_true", help=JSON_HELP)
    return p


def _service_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    s = command("serve", "watch sources, build, serve the status site and API")
    s.add_argument("--no-web", action="store_true", help="do not start the web server")
    s.add_argument(
        "--role",
        choices=["all", "web", "reconciler"],
        default="all",
        help="all: everything in one process (default); web: status site, API, registry and "
        "webhooks; reconciler: sources, passes and scheduling (roles other than all need "
        "PostgreSQL, with `condaops worker` processes running the builds)",
    )

    w = command("worker", "run builds, previews and publishing from the shared queue (PostgreSQL)")
    w.add_argument(
        "--slots",
        type=int,
        default=None,
        help="jobs this process runs at once (default build.concurrency; "
        "build.concurrency still holds across all workers)",
    )

    command("migrate", "create or upgrade the database schema, then exit")

    r = command("reconcile", "run one reconcile pass and the builds it queues, then exit")
    r.add_argument("--once", action="store_true", help="one pass (the default; kept for scripts that say so)")
    r.add_argument("--wait", action="store_true", help="also wait for retries; exit 1 if any build failed")
    r.add_argument("--json", action="store_true", help="print the outcome as JSON (counts by state, failed)")


def _lock_command(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    lk = command("lock", "write or refresh the committed lockfiles of a working tree (no conda needed)")
    lk.add_argument("environments", nargs="*", metavar="NS/NAME", help="environments or globs (default: all)")
    lk.add_argument("--dir", type=Path, default=Path("."), help="the working tree: a clone's root (default .)")
    lk.add_argument("--path", help="the sub-folder holding the environments (default: the source's path)")
    lk.add_argument("--source", help="the configured source whose settings apply (default: the only one)")
    lk.add_argument("--format", choices=["conda-lock", "pixi"], help="default: the existing lock's, else conda-lock")
    lk.add_argument("--platform", action="append", default=[], help="lock these platforms (default: configured)")
    lk.add_argument("--cooldown", type=float, default=0.0, help="days a new package version must be old (default 0)")
    lk.add_argument("--check", action="store_true", help="write nothing; exit 1 when a lock is missing or stale")
    lk.add_argument("--json", action="store_true", help=JSON_HELP)


def _check_options(p: argparse.ArgumentParser, *, git_default: str | None) -> None:
    where = "" if git_default else "with --git: "
    p.add_argument("--ref", help=f"{where}the change: HEAD (default), refs/pull/7/head, a branch or a SHA")
    p.add_argument(
        "--base", help=f"{where}the target: origin/main, refs/remotes/origin/main, main (default: the source's branch)"
    )
    p.add_argument("--path", help=f"{where}the sub-folder holding the environments (default: the source's path)")
    p.add_argument("--source", help=f"{where}the configured source whose settings apply (default: matched by URL)")
    p.add_argument(
        "--no-fetch", action="store_true", help=f"{where}never fetch history into a shallow clone (fail instead)"
    )
