"""``hbnn train``, ``hbnn convert`` and ``hbnn analyze`` (the converters package).

Registration imports nothing heavy; torch, safetensors and matplotlib are
imported inside the handlers. Every ``ConverterError`` becomes one
``hbnn: error: ...`` line and exit status 2.
"""
from __future__ import annotations

import functools
import os
import sys

from converters.data import DEFAULT_DATA_DIR, VAL_SIZE

from .errors import CommandError


def _beta(text):
    import argparse

    from converters.betas import parse_beta
    from converters.errors import ConfigError

    try:
        return parse_beta(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _handler(func):
    """Turn the package's errors (and a missing optional dependency) into CommandError."""
    @functools.wraps(func)
    def run(args):
        from converters.errors import ConverterError

        try:
            return func(args)
        except ConverterError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:  # unwritable output, full disk...: one line, not a traceback
            raise CommandError(f"Expected a readable/writable path, got {type(exc).__name__}: {exc}") from None
        except ModuleNotFoundError as exc:
            if exc.name in ("torch", "tqdm"):
                raise CommandError(f"Expected PyTorch for this command, got no module {exc.name!r} "
                                   f"(pip install '.[train]')") from None
            if exc.name == "matplotlib":
                raise CommandError("Expected matplotlib for plotting, got none (pip install '.[plot]')") from None
            raise
    return run


def _add_betas(p, default_w, default_a, parse=_beta):
    # convert passes parse=str: there "not given" (None) must differ from "inf" (also None once parsed).
    p.add_argument("--beta-w", type=parse, default=default_w, metavar="B",
                   help="weight segment length of the inner layers (int or 'inf')")
    p.add_argument("--beta-a", type=parse, default=default_a, metavar="B",
                   help="activation segment length of the inner layers (int or 'inf')")
    p.add_argument("--layer-beta", action="append", default=[], metavar="NAME=BW,BA",
                   help="per-layer betas, e.g. --layer-beta conv2=16,2 (repeatable)")


def add_train(p) -> None:
    p.add_argument("--arch", default="lenet", help="zoo architecture (lenet)")
    _add_betas(p, 16, 2)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (cosine-decayed to 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=DEFAULT_DATA_DIR, metavar="DIR", help="Fashion-MNIST IDX .gz directory")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="checkpoint directory")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images (smoke tests)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default=None, help="torch device (default: cuda if present, else cpu)")
    p.add_argument("--augment", default="flip", choices=["none", "flip", "flip-shift"],
                   help="training augmentation (default: random horizontal flips)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--val-size", type=int, default=VAL_SIZE, metavar="N",
                   help=f"hold out the last N training images for validation and best-epoch selection "
                        f"(default {VAL_SIZE}; 0 trains on all 60,000, for a final fit only)")
    p.add_argument("--warmup-epochs", type=float, default=0.0, metavar="E",
                   help="linear learning-rate warm-up over the first E epochs, then cosine decay")
    p.add_argument("--teacher", default=None, metavar="CKPT",
                   help="distil from this float checkpoint (e.g. OUT_FP/best of the same seed)")
    p.add_argument("--kd-alpha", type=float, default=0.9, help="weight of the distillation loss (default 0.9)")
    p.add_argument("--kd-temperature", type=float, default=4.0, help="distillation temperature (default 4)")
    p.add_argument("--int-scales", action="store_true",
                   help="integer scales: 7-bit levels x float factors on the binarized layers, so the board "
                        "computes integer sums (docs/DESIGN.md, section 9); the checkpoint and .hbn record it")
    p.set_defaults(func=_handler(cmd_train))


def add_convert(p) -> None:
    p.add_argument("input", metavar="MODEL", help="checkpoint dir, model.safetensors, .pt/.pth state dict, or .tflite")
    p.add_argument("-o", "--out", required=True, metavar="OUT.hbn")
    p.add_argument("--arch", default=None, help="zoo architecture of a plain float model")
    _add_betas(p, None, None, parse=str)
    p.set_defaults(func=_handler(cmd_convert))


def add_analyze(p) -> None:
    asub = p.add_subparsers(dest="analyze_command", metavar="WHAT")
    p.set_defaults(func=lambda args: p.print_help() or 2)
    a = asub.add_parser("angle", help="angle between a Gaussian vector and its Hadamard binarization")
    a.add_argument("-o", "--out", default=None, metavar="PNG", help="plot file (needs matplotlib)")
    a.add_argument("--dims", default="16,64,256,1024,4096", help="comma-separated vector dimensions")
    a.add_argument("--betas", default="1,2,4,8,16,32,64,inf", help="comma-separated betas")
    a.add_argument("--trials", type=int, default=200)
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(func=_handler(cmd_angle))
    c = asub.add_parser("correlation", help="per-layer correlation of float vs binarized activations")
    c.add_argument("model", metavar="MODEL", help="training checkpoint directory")
    c.add_argument("--data", default=DEFAULT_DATA_DIR, metavar="DIR")
    c.add_argument("--images", type=int, default=1000, help="test images to use")
    c.add_argument("--mode", choices=["passes", "layer"], default="passes",
                   help="passes: float vs binarized forward passes; layer: each layer on the same input")
    c.add_argument("-o", "--out", default=None, metavar="PNG", help="plot file (needs matplotlib)")
    c.set_defaults(func=_handler(cmd_correlation))


def cmd_train(args) -> int:
    from converters.betas import parse_layer_betas
    from converters.train import TrainOptions, train

    opts = TrainOptions(arch=args.arch, beta_w=args.beta_w, beta_a=args.beta_a,
                        layer_betas=parse_layer_betas(args.layer_beta), epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, seed=args.seed, data_dir=args.data,
                        out=args.out, resume=args.resume, limit=args.limit, threads=args.threads,
                        device=args.device, progress=not args.no_progress, augment=args.augment,
                        val_size=args.val_size, warmup_epochs=args.warmup_epochs, teacher=args.teacher,
                        kd_alpha=args.kd_alpha, kd_temperature=args.kd_temperature, int_scales=args.int_scales)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        from converters.errors import ConfigError
        raise ConfigError(f"Expected -o to name a checkpoint directory, got the file {args.out}")
    config = train(opts)
    if int(os.environ.get("RANK", "0")) == 0:
        best = config.get("best_val_acc")
        print(f"trained {config['arch']} for {config['epoch']} epochs; checkpoint in {args.out}" +
              (f", best validation accuracy {best:.4f} at epoch {config['best_epoch']} in "
               f"{os.path.join(args.out, 'best')}" if best is not None else " (no validation split)"))
    return 0


def cmd_convert(args) -> int:
    from converters.betas import parse_beta
    from converters.export import convert

    betas = {k: parse_beta(v) for k, v in (("beta_w", args.beta_w), ("beta_a", args.beta_a)) if v is not None}
    info = convert(args.input, args.out, arch=args.arch, layer_betas=args.layer_beta, **betas)
    print(f"wrote {args.out}: {info['layers']} layers, {info['bytes']} bytes "
          f"({info['ratio']:.1f}x smaller than float32)" if info.get("ratio") else f"wrote {args.out}")
    return 0


def _need_matplotlib(out) -> None:
    """Fail before any work when a plot is asked for and matplotlib is absent."""
    if out:
        import matplotlib  # noqa: F401  (ModuleNotFoundError -> one-line hint in _handler)


def cmd_angle(args) -> int:
    from converters import analyze
    from converters.errors import ConfigError

    _need_matplotlib(args.out)

    try:
        dims = [int(d) for d in args.dims.split(",")]
        betas = [_beta(b) for b in args.betas.split(",")]
    except Exception:
        raise ConfigError(f"Expected comma-separated ints for --dims and betas for --betas, got "
                          f"{args.dims!r} / {args.betas!r}") from None
    table = analyze.angle_table(dims, betas, trials=args.trials, seed=args.seed)
    sys.stdout.write(analyze.format_angle_table(table, dims, betas))
    if args.out:
        analyze.plot_angles(table, dims, betas, args.out)
        print(f"wrote {args.out}")
    return 0


def cmd_correlation(args) -> int:
    from converters import analyze

    _need_matplotlib(args.out)
    result = analyze.layer_correlations(args.model, args.data, images=args.images, mode=args.mode)
    for name, r in result:
        print(f"{name:8s} pearson r = {r:.4f}")
    if args.out:
        analyze.plot_correlations(result, args.out,
                                  title=f"{os.path.basename(os.path.normpath(args.model))} ({args.mode})")
        print(f"wrote {args.out}")
    return 0
