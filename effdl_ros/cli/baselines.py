"""`effdl-ros bench finetune` (issue 21): on-robot fine-tuning under a fixed modelled-energy budget."""
from __future__ import annotations

import argparse

from effdl_ros.cli.options import add_json_option, write_json


def _floats(text: str):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str):
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _configure_finetune(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="resnet20:8", help="resnetD[:W] pretrained on MNIST-5k (default resnet20:8)")
    p.add_argument("--budgets", type=_floats, default=[0.01, 0.04],
                   help="modelled training-energy budgets in joules (default 0.01,0.04)")
    p.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="seeds (default 0,1,2)")
    p.add_argument("--stream", type=int, default=300, help="new-domain items in the stream (default 300)")
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.02, help="fine-tuning lr, every method (default 0.02)")
    p.add_argument("--methods", default="", help="comma-separated subset of the methods (default all)")
    p.add_argument("--threads", type=int, default=1)
    add_json_option(p)


def _run_finetune(args: argparse.Namespace) -> int:
    import torch

    from effdl_ros.bench.finetune import METHODS, FinetuneSettings, bench_finetune, format_table
    from effdl_ros.errors import ConfigError

    if args.threads < 1 or args.pretrain_epochs < 1 or not args.seeds:
        raise ConfigError("--threads and --pretrain-epochs must be >= 1 and --seeds not empty")
    if not args.lr > 0:
        raise ConfigError(f"--lr must be > 0, got {args.lr}")
    torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] or list(METHODS)
    res = bench_finetune(arch=args.model, budgets_j=args.budgets, seeds=args.seeds,
                         stream_size=args.stream, pretrain_epochs=args.pretrain_epochs,
                         methods=methods, settings=FinetuneSettings(lr=args.lr),
                         progress=lambda s: print(f"  {s}", flush=True))
    print(format_table(res))
    if args.json:
        write_json(args.json, res)
    return 0


def register(cli) -> None:
    cli.add("bench", "finetune",
            help="adapt a digit net to a shifted domain from a short stream under a modelled energy "
                 "budget: E2-Train vs budget-matched plain vs last layer vs none",
            configure=_configure_finetune, run=_run_finetune)
