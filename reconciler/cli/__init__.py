# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion looks for this line)
"""The ``condaops`` command line.

Exit status: 0 success / no change; 1 changes (``plan``), failed builds
(``reconcile --wait``), a blocking policy violation (``check``) or an environment that is
not known (``status``, ``history``, ``rollback``, ``retire``); 2 bad configuration, bad
arguments, no state database for a read command, a broken environment or policy file
(``check``, ``plan --git``) or an error.

The commands live by what they touch: ``read`` (status, history, plan, changes: the state
DB only, opened for reading), ``operate`` (rollback, retire, gc), ``service`` (serve,
worker, migrate, reconcile: a ``Runtime``) and ``gate`` (check, lock, update). Each loads
on use, so ``condaops --help`` imports nothing but ``argparse``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib import import_module

from condaops.reconciler.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from condaops.reconciler.cli.parser import build_parser, global_defaults

__all__ = ["COMMANDS", "EXIT_CHANGES", "EXIT_ERROR", "EXIT_OK", "build_parser", "main", "run"]

COMMANDS = {
    "serve": "service",
    "worker": "service",
    "migrate": "service",
    "reconcile": "service",
    "plan": "read",
    "status": "read",
    "history": "read",
    "changes": "read",
    "rollback": "operate",
    "retire": "operate",
    "gc": "operate",
    "check": "gate",
    "lock": "gate",
    "update": "gate",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(_complete_environments)
    if "_ARGCOMPLETE" in os.environ:  # a shell is completing a word: answer and exit
        import argcomplete

        argcomplete.autocomplete(parser)
    args = global_defaults(parser.parse_args(argv))
    _configure_logging(args.log_level)
    return run(args)


def run(args) -> int:
    """Load the settings and run ``args.command``; errors become a message and a status."""
    from condaops.config import ConfigError, load_settings
    from condaops.reconciler.cli.common import Refused, say
    from condaops.reconciler.errors import CondaopsError

    command = getattr(import_module(f"condaops.reconciler.cli.{COMMANDS[args.command]}"), f"cmd_{args.command}")
    try:
        return int(command(load_settings(args.config), args))
    except Refused as exc:
        say(str(exc))
        return exc.status
    except ConfigError as exc:
        say(f"configuration error: {exc}")
        return EXIT_ERROR
    except CondaopsError as exc:
        say(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `condaops status | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _configure_logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("apscheduler", "alembic", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _complete_environments(prefix: str, parsed_args, **_: object) -> list[str]:
    """``NS/NAME`` completions from the state DB (only while a shell completes; never fails)."""
    try:
        from condaops.config import load_settings
        from condaops.reconciler.cli.common import open_state
        from condaops.reconciler.state.queries import list_environments

        engine = open_state(load_settings(getattr(parsed_args, "config", None)))
        try:
            names = [str(e.ref) for e in list_environments(engine, include_retired=True)]
        finally:
            engine.dispose()
    except Exception:  # completion must never print a traceback into the shell
        return []
    return [n for n in names if n.startswith(prefix)]
