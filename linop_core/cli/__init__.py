"""Command-line entry points (thin wrappers over linop_core)."""

from __future__ import annotations

import argparse
import sys


def run_subcommand(prog: str, args: argparse.Namespace) -> int:
    """Runs ``args.func(args)``: a LinopError becomes one line on stderr and exit code 1, never a traceback."""
    from linop_core.errors import LinopError

    try:
        return args.func(args)
    except LinopError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0
