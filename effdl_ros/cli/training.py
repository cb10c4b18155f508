"""`effdl-ros train e2train`, `prune eb`, `bench e2train`, `bench eb` (issue 7: E2-Train, Early-Bird)."""
from __future__ import annotations

import argparse
from pathlib import Path

from effdl_ros.cli.options import add_json_option, write_json
from effdl_ros.errors import ConfigError


def _common(p: argparse.ArgumentParser, *, data_default: str = "sklearn") -> None:
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: on a shared 2-core machine more threads "
                        "oversubscribe and run slower)")
    p.add_argument("--seed", type=int, default=0)


def _set_threads(n: int) -> None:
    import torch

    if n < 1:
        raise ConfigError(f"--threads must be >= 1, got {n}")
    torch.set_num_threads(n)


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if not (value > 0 or (allow_zero and value == 0)):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


# --- train e2train ------------------------------------------------------------------------------
def _add_slu_options(p: argparse.ArgumentParser) -> None:
    """SLU's knobs, shared by `train e2train` and `bench e2train`."""
    p.add_argument("--slu-target", type=float, default=0.25,
                   help="SLU target share of gated blocks that run (1 = off)")
    p.add_argument("--slu-beta", type=float, default=0.2, help="weight of SLU's compute regulariser")
    p.add_argument("--slu-unit", choices=("batch", "sample"), default="batch",
                   help="one gate decision per mini-batch (whole-batch skips, default) or per sample")
    p.add_argument("--slu-anneal", type=float, default=0.0,
                   help="share of the run over which the SLU target falls linearly from 1 (default 0)")
    p.add_argument("--slu-reg", choices=("logit", "prob"), default="logit",
                   help="SLU regulariser on the gates' logits (default) or E2-Train's sum of masks")


def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="sklearn", help="mnist5k | sklearn | opencv (default sklearn)")
    p.add_argument("--model", default="resnet32:8", help="resnetD[:W], D = 6n+2 (default resnet32:8)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--smd", type=float, default=0.5, help="SMD drop rate (0 = off; paper 0.5)")
    _add_slu_options(p)
    p.add_argument("--no-slu", action="store_true", help="train without SLU gates")
    p.add_argument("--psg", action="store_true", help="predictive sign gradients (modelled saving)")
    p.add_argument("--validation", action="store_true",
                   help="train on 80 %% of the training split and score on the other 20 %% (seed 123), "
                        "never on the test split: for choosing settings")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=128, help="mini-batch (E2-Train: 128)")
    p.add_argument("--out", default=None, help="checkpoint to write (atomically), e.g. models/x.pt")
    add_json_option(p, "also write the figures as JSON")
    _common(p)


def _run_train(args: argparse.Namespace) -> int:
    _set_threads(args.threads)
    from tqdm import tqdm

    from effdl_ros.training.checkpoint import save_checkpoint
    from effdl_ros.training.e2train import E2TrainConfig, modelled_energy_j
    from effdl_ros.training.experiments import load_data, run_e2train, validation_split

    if not 0.0 <= args.smd < 1.0:
        raise ConfigError(f"--smd must be in [0, 1), got {args.smd}")
    if not 0.0 < args.slu_target <= 1.0:
        raise ConfigError(f"--slu-target must be in (0, 1], got {args.slu_target}")
    _positive("--epochs", args.epochs)
    data = load_data(args.data)
    if args.validation:
        data = validation_split(data)
    slu = not args.no_slu and args.slu_target < 1.0
    _positive("--batch-size", args.batch_size)
    cfg = E2TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, smd_rate=args.smd, slu=slu,
                        slu_target=args.slu_target, slu_beta=args.slu_beta, slu_unit=args.slu_unit,
                        slu_anneal=args.slu_anneal, slu_reg=args.slu_reg, psg=args.psg, seed=args.seed)
    bar = tqdm(total=1, desc="e2train", unit="it", dynamic_ncols=True)

    def on_iteration(it, total, res, trainer, dense_per_sample):
        if bar.total != total:
            bar.total = total
        bar.update(1)
        if it % 5 and it != total:
            return
        st = trainer.stats
        tally = trainer.counter.tally
        dense = dense_per_sample * cfg.batch_size * it
        pred = trainer.psg_stats.predicted_fraction if trainer.psg_stats else 0.0
        bar.set_postfix(loss=f"{st.mean_loss:.3f}", executed=f"{tally.total / max(1, dense):.0%}",
                        energy=f"{modelled_energy_j(tally, psg=cfg.psg, psg_predicted_fraction=pred):.3f}J")

    model, result = run_e2train(data, args.model, cfg, gate_bias=3.0, on_iteration=on_iteration)
    bar.close()
    print(f"{args.data}: {'validation' if args.validation else 'test'} top-1 {result['accuracy']:.4f} "
          f"(all blocks {result['accuracy_all_blocks']:.4f}), "
          f"executed training MACs {result['executed_train_macs'] / 1e9:.2f} G = "
          f"{result['executed_train_macs'] / result['dense_train_macs']:.1%} of dense, wall "
          f"{result['wall_s']:.1f} s (measured), energy {result['modelled_energy_j']:.3f} J (modelled)")
    if args.out:
        meta = {"data": args.data, "image_size": data.size, "mean": 0.13, "std": 0.31,
                "classes": [str(i) for i in range(10)], "accuracy": result["accuracy"],
                "command": "effdl-ros train e2train " + " ".join(
                    f"--{k.replace('_', '-')} {v}" for k, v in sorted(vars(args).items())
                    if not k.startswith("_") and k not in ("command", "verb") and v not in (None, False))}
        save_checkpoint(args.out, model.state_dict(), model.config.to_dict(), meta)
        print(f"wrote {args.out}")
    if args.json:
        write_json(args.json, {"config": vars(cfg) if hasattr(cfg, "__dict__") else {}, **result})
    return 0


# --- prune eb -------------------------------------------------------------------------------------
def _configure_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="resnet20:16",
                   help="resnetD[:W] to train from scratch, or a GatedResNet checkpoint to start from")
    p.add_argument("--data", default="sklearn", help="mnist5k | sklearn | opencv")
    p.add_argument("--ratio", type=float, default=0.5, help="share of BN channels to prune (0..1)")
    p.add_argument("--epochs", type=int, default=20, help="length of the full schedule")
    p.add_argument("--epsilon", type=float, default=0.1, help="mask-distance threshold for the ticket")
    p.add_argument("--retrain", choices=("continue", "scratch"), default="continue",
                   help="continue = the ticket's weights train on for the remaining epochs; "
                        "scratch = re-initialised, all epochs")
    p.add_argument("--out", required=True, help="pruned checkpoint, e.g. models/resnet20_sklearn_eb.pt")
    add_json_option(p)
    _common(p)


def _run_prune(args: argparse.Namespace) -> int:
    _set_threads(args.threads)
    import torch

    from effdl_ros.training.checkpoint import load_gated_resnet, save_checkpoint
    from effdl_ros.training.e2train import E2TrainConfig, evaluate
    from effdl_ros.training.experiments import load_data, make_config, retrain_pruned, search_early_bird
    from effdl_ros.training.macs import inference_macs
    from effdl_ros.training.prune import prune_resnet, reinitialised
    from effdl_ros.training.resnet import GatedResNet, count_parameters

    if not 0.0 < args.ratio < 1.0:
        raise ConfigError(f"--ratio must be in (0, 1), got {args.ratio}")
    _positive("--epochs", args.epochs)
    data = load_data(args.data)
    torch.manual_seed(args.seed)
    if args.model.startswith("resnet") and not Path(args.model).exists():
        model = GatedResNet(make_config(args.model, data))
    else:
        model = load_gated_resnet(args.model)[0].train()
    cfg = E2TrainConfig(epochs=args.epochs, seed=args.seed, lr_drops=(0.5, 0.75))
    print(f"searching an Early-Bird ticket: ratio {args.ratio}, epsilon {args.epsilon}, "
          f"{args.epochs}-epoch schedule")

    def on_epoch(epoch, dist, drawn):
        mark = "  <- ticket drawn" if drawn else ""
        print(f"epoch {epoch:3d}  mask distance {dist:.4f}{mark}", flush=True)

    trainer, run = search_early_bird(model, data, cfg, ratio=args.ratio, epsilon=args.epsilon,
                                     stop_at_ticket=True, on_epoch=on_epoch)
    trainer.close()
    if run.ticket_epoch is None:
        print(f"no ticket within {args.epochs} epochs (distance never <= {args.epsilon}); nothing written")
        return 1
    pruned = prune_resnet(run.snapshot, run.mask)
    start = run.ticket_epoch
    if args.retrain == "scratch":
        pruned, start = reinitialised(pruned, args.seed), 0
    print(f"ticket drawn at epoch {run.ticket_epoch} of {args.epochs}; parameters "
          f"{count_parameters(model):,} -> {count_parameters(pruned):,}; retraining ({args.retrain}) "
          f"for {args.epochs - start} epochs")
    tr, wall = retrain_pruned(pruned, data, cfg, start_epoch=start)
    tr.close()
    acc = evaluate(pruned, data.x_test, data.y_test)[0]
    macs = inference_macs(pruned, data.x_test[:64])
    print(f"pruned model: top-1 {acc:.4f}, {macs:,} MACs per inference, {count_parameters(pruned):,} "
          f"parameters")
    meta = {"data": args.data, "image_size": data.size, "mean": 0.13, "std": 0.31,
            "classes": [str(i) for i in range(10)], "accuracy": acc, "ticket_epoch": run.ticket_epoch,
            "ratio": args.ratio, "retrain": args.retrain, "inference_macs": macs,
            "mask_distances": run.distances}
    save_checkpoint(args.out, pruned.state_dict(), pruned.config.to_dict(), meta)
    print(f"wrote {args.out}")
    if args.json:
        write_json(args.json, meta)
    return 0


# --- bench e2train / bench eb -----------------------------------------------------------------------
def _configure_bench_e2(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="mnist5k,sklearn", help="comma-separated data sets")
    p.add_argument("--model", default="resnet32:8")
    p.add_argument("--epochs", default="mnist5k=60,sklearn=96",
                   help="epochs per data set, the same for every variant, e.g. mnist5k=60,sklearn=96")
    _add_slu_options(p)
    p.add_argument("--sequential", action="store_true",
                   help="train the variants one after the other (default: interleaved, one "
                        "iteration each in turn, so that they share the machine's load)")
    p.add_argument("--batch-size", type=int, default=128, help="mini-batch (E2-Train: 128)")
    add_json_option(p)
    _add_equal_cost_options(p, "SMD,SMD+SLU,SMD+SLU+PSG")
    _common(p)


def _add_equal_cost_options(p: argparse.ArgumentParser, variants: str = "") -> None:
    """Issue 21: equal-cost baselines over several seeds (effdl_ros.bench.equal_cost)."""
    p.add_argument("--seeds", default="0,1,2",
                   help="seeds for the equal-cost run, mean +- std (default 0,1,2)")
    p.add_argument("--no-equal-cost", action="store_true",
                   help="only the method rows, one seed (--seed), as before issue 21")
    if variants:
        p.add_argument("--variants", default=variants,
                       help=f"method rows beside 'full' (default {variants})")


def _seeds(text: str):
    from effdl_ros.errors import ConfigError

    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers, got {text!r}") from None
    if not seeds:
        raise ConfigError("--seeds is empty")
    return seeds


def _run_equal_cost(args: argparse.Namespace, kind: str) -> int:
    from effdl_ros.bench import equal_cost
    from effdl_ros.errors import ConfigError
    from effdl_ros.training.experiments import VARIANTS

    datasets = [d.strip() for d in args.data.split(",") if d.strip()]
    epochs = _epochs(args.epochs, datasets)
    seeds = _seeds(args.seeds)
    progress = lambda s: print(f"  running {s} ...", flush=True)  # noqa: E731
    out = {"issue": 21, "results": {}}
    for name in datasets:
        if kind == "e2train":
            variants = ["full"] + [v.strip() for v in args.variants.split(",") if v.strip() and v.strip() != "full"]
            bad = [v for v in variants if v not in VARIANTS]
            if bad:
                raise ConfigError(f"--variants: unknown {bad}; known: {list(VARIANTS)}")
            res = equal_cost.e2train_equal_cost(
                name, arch=args.model, epochs=epochs[name], seeds=seeds, variants=variants,
                batch_size=args.batch_size, progress=progress, slu_target=args.slu_target,
                slu_beta=args.slu_beta, slu_unit=args.slu_unit, slu_anneal=args.slu_anneal,
                slu_reg=args.slu_reg, interleave=not args.sequential)
        else:
            res = equal_cost.eb_equal_cost(name, arch=args.model, epochs=epochs[name], seeds=seeds,
                                           ratio=args.ratio, epsilon=args.epsilon, progress=progress)
        print(equal_cost.format_table(res))
        out["results"][name] = res
    if args.json:
        write_json(args.json, out)
    return 0


def _epochs(spec: str, datasets):
    out = {}
    for part in spec.split(","):
        name, _, n = part.partition("=")
        try:
            out[name.strip()] = int(n)
        except ValueError:
            raise ConfigError(f"--epochs: expected name=N pairs, got {part!r}") from None
    missing = [d for d in datasets if d not in out]
    if missing:
        raise ConfigError(f"--epochs gives no epoch count for {', '.join(missing)}")
    return out


def _run_bench_e2(args: argparse.Namespace) -> int:
    _set_threads(args.threads)
    if not args.no_equal_cost:
        return _run_equal_cost(args, "e2train")
    from effdl_ros.bench.training import bench_e2train

    datasets = [d.strip() for d in args.data.split(",") if d.strip()]
    res = bench_e2train(datasets, arch=args.model, epochs=_epochs(args.epochs, datasets),
                        seed=args.seed, slu_target=args.slu_target, slu_beta=args.slu_beta,
                        slu_unit=args.slu_unit, slu_anneal=args.slu_anneal, slu_reg=args.slu_reg,
                        interleave=not args.sequential,
                        batch_size=args.batch_size, progress=lambda s: print(f"  running {s} ...", flush=True))
    head = (f"{'data':8} {'variant':12} {'top-1':>6} {'drop pt':>7} {'train GMAC':>10} {'MACs saved':>10} "
            f"{'wall s':>7} {'wall saved':>10} {'energy J*':>9} {'E saved*':>8}")
    print(head)
    print("-" * len(head))
    for name, block in res["results"].items():
        for variant, r in block["variants"].items():
            print(f"{name:8} {variant:12} {r['accuracy']:6.4f} {r.get('accuracy_drop_points', 0):7.2f} "
                  f"{r['executed_train_macs'] / 1e9:10.2f} {r.get('macs_saved', 0):10.1%} {r['wall_s']:7.1f} "
                  f"{r.get('wall_saved', 0):10.1%} {r['modelled_energy_j']:9.4f} {r.get('energy_saved', 0):8.1%}")
    print("measured: top-1, executed MACs (counted from what ran), wall time; * modelled: compute energy "
          "(fp32 4.6 pJ/MAC; PSG at 8/4/16 bit, Horowitz ISSCC 2014)")
    if args.json:
        write_json(args.json, res)
    return 0


def _configure_bench_eb(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="mnist5k,sklearn")
    p.add_argument("--model", default="resnet20:8")
    p.add_argument("--epochs", default="mnist5k=40,sklearn=32",
                   help="length of the schedule per data set (dense and EB rows alike)")
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--epsilon", type=float, default=0.1)
    add_json_option(p)
    _add_equal_cost_options(p)
    _common(p)


def _run_bench_eb(args: argparse.Namespace) -> int:
    _set_threads(args.threads)
    if not args.no_equal_cost:
        return _run_equal_cost(args, "eb")
    from effdl_ros.bench.training import bench_eb

    datasets = [d.strip() for d in args.data.split(",") if d.strip()]
    res = bench_eb(datasets, arch=args.model, epochs=_epochs(args.epochs, datasets), ratio=args.ratio,
                   epsilon=args.epsilon, seed=args.seed,
                   progress=lambda s: print(f"  running {s} ...", flush=True))
    head = (f"{'data':8} {'variant':14} {'ticket ep':>9} {'top-1':>6} {'drop pt':>7} {'MACs/inf':>10} "
            f"{'params':>8} {'train GMAC':>10} {'energy J*':>9} {'E saving*':>9} {'wall s':>7} {'wall x':>6}")
    print(head)
    print("-" * len(head))
    for name, block in res["results"].items():
        print(f"{name}: mask distance per epoch: " + " ".join(f"{d:.3f}" for d in block["distances"]))
        for variant, r in block["variants"].items():
            ep = f"{r['ticket_epoch']}/{block['epochs']}" if r["ticket_epoch"] else "-"
            print(f"{name:8} {variant:14} {ep:>9} {r['accuracy']:6.4f} {r['accuracy_drop_points']:7.2f} "
                  f"{r['inference_macs']:10,} {r['parameters']:8,} {r['train_macs'] / 1e9:10.2f} "
                  f"{r['modelled_energy_j']:9.4f} {r['energy_saving_x']:8.2f}x {r['wall_s']:7.1f} "
                  f"{r['wall_saving_x']:5.2f}x")
        if block["ticket_epoch"] is None:
            print(f"{name}: no ticket drawn within {block['epochs']} epochs")
    print("measured: top-1, MACs, wall time; * modelled: training compute energy = executed MACs x "
          "4.6 pJ (fp32, Horowitz ISSCC 2014); EB rows include the search epochs")
    if args.json:
        write_json(args.json, res)
    return 0


def register(cli) -> None:
    cli.add("train", "e2train", help="train a CIFAR-style ResNet with E2-Train (SMD, SLU, PSG)",
            configure=_configure_train, run=_run_train)
    cli.add("prune", "eb", help="draw an Early-Bird ticket, prune it physically, retrain, save",
            configure=_configure_prune, run=_run_prune)
    cli.add("bench", "e2train", help="full vs SMD vs SMD+SLU vs SMD+SLU+PSG, side by side",
            configure=_configure_bench_e2, run=_run_bench_e2)
    cli.add("bench", "eb", help="dense vs Early-Bird ticket (continue / from scratch), side by side",
            configure=_configure_bench_eb, run=_run_bench_eb)
