"""The ``hbnn`` command line: the parser and the one table of subcommands.

Every command is a row of ``COMMANDS``: its words, the function that adds its options and handler
(``module:function``, in one of this package's ``*_commands`` modules) and its help line.
Registration stays cheap: heavy imports (torch, cv2, pymavlink, the kernels) happen inside the
handlers, so ``hbnn --version`` works on a bare board.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from . import __version__
from .errors import CommandError

COMMANDS = (
    (("bench", "kernels"), "hbnn.bench_commands:add_kernels", "xHBNN conv kernels vs numpy SGEMM conv (same run)"),
    (("train",), "hbnn.train_commands:add_train", "train a HadaNet of the model zoo on Fashion-MNIST"),
    (("convert",), "hbnn.train_commands:add_convert", "checkpoint, float PyTorch model or .tflite -> packed .hbn model"),
    (("analyze",), "hbnn.train_commands:add_analyze", "the paper's figures: binarization angle, layer correlation"),
    (("inspect",), "hbnn.model_commands:add_inspect", "layers, betas, parameters and sizes of a .hbn model"),
    (("eval",), "hbnn.model_commands:add_eval",
     "accuracy, confusion matrix and throughput of a .hbn model on Fashion-MNIST"),
    (("infer",), "hbnn.run_commands:add_infer", "run a model on a frame source, print results and stats"),
    (("daemon",), "hbnn.run_commands:add_daemon", "run source -> model -> link as a service (systemd)"),
    (("demo",), "hbnn.run_commands:add_demo",
     "bundled model + clip -> MAVLink over a pty -> decoded on the FC side"),
    (("bench", "models"), "hbnn.bench_commands:add_models", "end-to-end latency vs LiteRT/TFLite/ONNX Runtime"),
    (("bench", "memory"), "hbnn.bench_commands:add_memory",
     "peak RSS and RSS growth of `hbnn infer` on a long run"),
    (("bench", "soak"), "hbnn.bench_commands:add_soak",
     "long run of the real loop: RSS growth, latency over time, errors"),
    (("listen",), "hbnn.link_commands:add_listen", "decode and print what arrives on a link (bench debugging)"),
    (("bridge-test",), "hbnn.link_commands:add_bridge_test", "send a burst of synthetic results over a link"),
)

# Commands with subcommands of their own: their help line.
GROUPS = {"bench": "benchmarks (kernels, models, soak)"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hbnn",
        description="HadaNets on small boards: kernels, training, conversion, runtime, autopilot bridge.",
    )
    parser.add_argument("--version", action="version", version=f"hbnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    groups = {}
    for words, target, help_text in COMMANDS:
        parent = sub
        if len(words) == 2:
            if words[0] not in groups:
                group = sub.add_parser(words[0], help=GROUPS[words[0]])
                group.set_defaults(func=lambda args, g=group: g.print_help() or 2)
                groups[words[0]] = group.add_subparsers(dest=f"{words[0]}_command", metavar="WHAT")
            parent = groups[words[0]]
        module, function = target.split(":")
        getattr(importlib.import_module(module), function)(parent.add_parser(words[-1], help=help_text))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at exit
    except CommandError as exc:
        print(f"hbnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hbnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `hbnn ... | head`: the reader has gone, which is not an error worth a traceback. Point
        # stdout at /dev/null so the interpreter's own flush at exit is quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141  # 128 + SIGPIPE, what a shell reports for a C tool stopped the same way
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
