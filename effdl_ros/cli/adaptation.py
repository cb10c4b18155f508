"""`effdl-ros train mdda` and `effdl-ros bench adaptation` (issue 6: MDDA, and MADAN's rows)."""
from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

from effdl_ros.cli.options import add_json_option, write_json
from effdl_ros.errors import ConfigError, EffdlError
from effdl_ros.resources import shared_data_dir


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _names(text: str) -> list:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one domain name")
    return names


def _add_mdda_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pretrain-iters", type=_positive, default=None,
                   help="stage 1 iterations per source (default 500; paper 3000)")
    p.add_argument("--adapt-iters", type=_positive, default=None,
                   help="stage 2 WGAN-GP iterations per source (default 1600; paper 5500)")
    p.add_argument("--paper-sizes", action="store_true",
                   help="the paper's network widths (64/64/128, FC 3072/2048, critic 3000-2000-1000): slow on CPU")
    p.add_argument("--max-per-domain", type=_positive, default=None,
                   help="cap on images per domain (before the 80/20 split), for quick runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_positive, default=2,
                   help="torch intra-op threads (default 2; on a crowded machine 1 is often faster)")


def _config(args):
    from effdl_ros.adaptation.mdda import MddaConfig
    from effdl_ros.adaptation.nets import NetSizes

    cfg = MddaConfig(seed=args.seed)
    if args.paper_sizes:
        cfg.sizes = NetSizes.paper()
    if args.pretrain_iters:
        cfg.pretrain_iters = args.pretrain_iters
    if args.adapt_iters:
        cfg.adapt_iters = args.adapt_iters
    return cfg


def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sources", type=_names, required=True,
                   help="comma-separated labelled source domains, e.g. mnist5k,sklearn,opencv "
                        "(<base>[-<shift>], base mnist5k|sklearn|opencv, shift m|inv|blur|rot)")
    p.add_argument("--target", required=True, help="the unlabelled target domain, e.g. mnistm")
    p.add_argument("--weighting", choices=("critic", "emd", "sliced"), default="critic",
                   help="domain weights from the critic's W (paper) or from exact OT distances (POT)")
    p.add_argument("--out", default="models/mdda_digits.pt", help="checkpoint to write")
    _add_mdda_options(p)


def _run_train(args) -> int:
    import torch

    from effdl_ros.adaptation import mdda
    from effdl_ros.adaptation.domains import build_domains, canonical_name
    from effdl_ros.adaptation.nets import encoder_macs
    from effdl_ros.adaptation.ot_distance import feature_distance

    torch.set_num_threads(args.threads)
    cfg = _config(args)
    srcs = [canonical_name(s) for s in args.sources]
    tgt_name = canonical_name(args.target)
    if tgt_name in srcs:
        raise ConfigError(f"--target {args.target} is also one of --sources")
    domains = build_domains([*srcs, tgt_name], seed=args.seed, max_per_domain=args.max_per_domain)
    tgt = domains.pop(tgt_name)
    runs = mdda.train_sources(domains, tgt.train_x, cfg, log=print)
    if args.weighting == "critic":
        dist = [r.critic_distance for r in runs]
    else:
        dist = [feature_distance(r.source_feats.numpy(), r.target_feats.numpy(), method=args.weighting,
                                 seed=args.seed) for r in runs]
    weights = mdda.domain_weights(dist)
    model = mdda.assemble(runs, weights, cfg.sizes)
    acc = mdda.accuracy(mdda.predict_logits(model, tgt.test_x), tgt.test_y)
    for r, d, w in zip(runs, dist, weights):
        print(f"  {r.name:14s} distance {d:8.3f}  weight {w:.3f}")
    print(f"MDDA {'+'.join(srcs)} -> {tgt_name}: target test accuracy {100 * acc:.1f} % "
          f"(target labels used for this report only)")
    meta = {"sources": srcs, "target": tgt_name, "weighting": args.weighting,
            "distances": [float(d) for d in dist], "target_test_accuracy": acc,
            "macs_per_image": encoder_macs(cfg.sizes) * len(runs), "mdda_config": cfg.to_dict()}
    mdda.save_model(model, Path(args.out), meta)
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out} ({size / 1e6:.2f} MB, {meta['macs_per_image'] / 1e6:.1f} M MACs per image)")
    return 0


def _configure_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", choices=("digits", "segmentation", "all"), default="digits")
    p.add_argument("--sources", type=_names, default=None,
                   help="digit source domains (default mnist5k,sklearn,opencv,opencv-inv)")
    p.add_argument("--target", default=None, help="digit target domain (default mnistm)")
    add_json_option(p, "write all rows as JSON here")
    p.add_argument("--save-model", default=None,
                   help="also write the MDDA (critic weights) digits model here, e.g. models/mdda_digits.pt")
    p.add_argument("--equal-cost", action="store_true",
                   help="digits: also the merged-sources network with MDDA's training iterations, alone and adapted "
                        "to the target as one source (issue 21)")
    p.add_argument("--models-dir", default=None, help="segmentation checkpoints (default models/)")
    p.add_argument("--camvid", default=None, help="CamVid root (default ../shared/data/segmentation/camvid)")
    _add_mdda_options(p)


def _print_digits(res) -> None:
    print(f"\nMDDA digits benchmark: sources {', '.join(res.sources)} -> target {res.target} "
          f"(real digits under synthetic shifts; target test split, "
          f"{res.sizes[res.target]['test']} images)")
    print(f"{'method':62s} {'target acc %':>12s} {'weights':>24s}")
    for r in res.rows:
        w = " ".join(f"{x:.2f}" for x in r.get("weights", []))
        print(f"{r['method']:62s} {100 * r['accuracy']:12.1f} {w:>24s}")
    print("\nper-source domain distances (target encoder i vs source encoder i features):")
    print(f"{'source':14s} {'critic W':>9s} {'OT emd':>8s} {'OT sliced':>10s} "
          f"{'w critic':>9s} {'w emd':>7s} {'w sliced':>9s} {'distilled':>10s}")
    for name, d in res.distances.items():
        print(f"{name:14s} {d['critic_w']:9.3f} {d['ot_emd']:8.3f} {d['ot_sliced']:10.3f} "
              f"{d['weight_critic']:9.3f} {d['weight_ot_emd']:7.3f} {d['weight_ot_sliced']:9.3f} "
              f"{d['n_distilled']:10d}")
    g = res.goal
    print(f"\ngoal: multi-source (critic weights) {100 * g['multi_source']:.1f} % vs best single-source "
          f"{100 * g['best_single_source']:.1f} %: {g['margin_points']:+.1f} points "
          f"(goal >= +{g['goal_points']:.0f}): {'MET' if g['met'] else 'NOT MET'}")
    if "equal_cost_baseline" in g:
        print(f"vs the strongest equal-cost baseline ({g['equal_cost_baseline']}): "
              f"{g['margin_over_equal_cost_points']:+.1f} points")
    print(f"paper (real Digit-Five, leave-one-out average, MDDA): {res.to_dict()['paper']['mdda_digit_five_average']}"
          f" % [figure recalled in REFERENCES.md, marked verify]")
    print(f"wall time {res.wall_s:.0f} s")


def _run_bench(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    out = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "cpu_count": os.cpu_count(), "torch_threads": args.threads,
                       "torch": torch.__version__, "python": sys.version.split()[0]}}
    if args.task in ("digits", "all"):
        from effdl_ros.bench.adaptation import DEFAULT_SOURCES, DEFAULT_TARGET, run_digits_benchmark

        res = run_digits_benchmark(args.sources or DEFAULT_SOURCES, args.target or DEFAULT_TARGET,
                                   cfg=_config(args), seed=args.seed,
                                   max_per_domain=args.max_per_domain, save_model=args.save_model,
                                   equal_cost=args.equal_cost, log=print)
        _print_digits(res)
        out["digits"] = res.to_dict()
    if args.task in ("segmentation", "all"):
        out["segmentation"] = _bench_segmentation(args)
    if args.json:
        write_json(args.json, out)
    return 1 if "error" in out.get("segmentation", {}) else 0


def _bench_segmentation(args):
    """MADAN's rows from the segmentation helper's benchmark; says so when that part is missing."""
    try:
        from effdl_ros.bench import segmentation as seg_bench
    except ImportError as err:
        print(f"\nsegmentation part missing: effdl_ros.bench.segmentation is not importable ({err})")
        return {"missing": str(err)}

    models_dir = Path(args.models_dir) if args.models_dir else Path("models")
    camvid = Path(args.camvid) if args.camvid else shared_data_dir() / "segmentation" / "camvid"
    try:
        rows = seg_bench.run_segmentation_benchmark(models_dir, camvid)
    except EffdlError as err:  # e.g. a MADAN checkpoint not trained yet: keep the digits part
        print(f"\nsegmentation part unavailable: {err}")
        return {"error": str(err)}
    print("\nMADAN segmentation benchmark (CamVid val, real target frames):")
    print(f"{'method':66s} {'mIoU %':>7s} {'pixel acc %':>11s} {'ms/frame':>9s}")
    for r in rows:
        print(f"{r['method']:66s} {100 * r['miou']:7.1f} {100 * r['pixel_acc']:11.1f} "
              f"{r['ms_per_frame']:9.1f}")
    out = {"rows": rows}
    summary = getattr(seg_bench, "summary", None)
    if summary is not None:
        out["goal"] = summary(rows)
        for key, value in out["goal"].items():
            print(f"  {key}: {value:.3f}")
    return out


def register(cli) -> None:
    cli.add("train", "mdda", help="multi-source distilling domain adaptation on digit domains (MDDA)",
            configure=_configure_train, run=_run_train)
    cli.add("bench", "adaptation",
            help="source-only vs single-source vs multi-source adaptation vs oracle, same target test data",
            configure=_configure_bench, run=_run_bench)
