"""The ``hbnn`` command line.

Each package contributes its own subcommands through a module with a
``register(subparsers)`` function, listed in ``COMMAND_MODULES``. Registration
must stay cheap: heavy imports (torch, cv2, pymavlink) happen inside the
command handlers, so ``hbnn --version`` works on a bare board.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from ._version import __version__

# Modules that add subcommands. A module that does not exist yet is skipped.
COMMAND_MODULES = (
    "cy_kernels.cli",
    "converters.cli",
    "edge.model_cli",
    "edge.commands",
    "firmware_bridge.cli",
)


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hbnn",
        description="HadaNets on small boards: kernels, training, conversion, runtime, autopilot bridge.",
    )
    parser.add_argument("--version", action="version", version=f"hbnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = sub.add_parser("bench", help="benchmarks (kernels, models, soak)")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="WHAT")
    bench.set_defaults(func=lambda args: bench.print_help() or 2)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # the module itself is absent, not one of its imports
                continue
            raise
        module.register(sub, bench_sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except CommandError as exc:
        print(f"hbnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hbnn: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    # `python -m edge.cli` runs this file as __main__; dispatch through the importable module so
    # that handlers raising edge.cli.CommandError are caught by the same class
    from edge.cli import main as _main

    sys.exit(_main())
