"""`effdl-ros train madan`, `train madan-adapt`, `train segmenter`, `train adabn`, `eval segmentation` and `bench segmentation`.

Also runnable on its own (`python -m effdl_ros.cli.segmentation train madan ...`), so a training job
on a bare GPU machine needs no other command module.
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional, Sequence

from effdl_ros.cli.options import add_json_option, write_json
from effdl_ros.errors import ConfigError, DataError, EffdlError


def _add_target_frame_options(p: argparse.ArgumentParser) -> None:
    """How the unlabelled target recording is read (`train madan --target`, `train adabn --target`)."""
    p.add_argument("--image-topic", default=None, help="with a bag target: the image topic (needed when it has several)")
    p.add_argument("--target-frames", type=int, default=400,
                   help="at most this many target frames, spread evenly over the recording (default 400)")


def _check_target_frames(args: argparse.Namespace) -> None:
    if args.target_frames < 1:
        raise ConfigError(f"--target-frames must be at least 1, not {args.target_frames}")


def _command_line(verb: str) -> str:
    """The command as the user typed it, for a model card: `effdl-ros <verb> <its arguments>`."""
    return f"effdl-ros {verb} " + " ".join(shlex.quote(a) for a in sys.argv[3:])


def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sources", default="sunny,dusk",
                   help="comma-separated labelled sources: rendered styles (effdl_ros.segmentation.scenes.STYLES) "
                        "and/or real CamVid sequences as camvid:SEQ, e.g. camvid:0006R0,camvid:0016E5,sunny")
    p.add_argument("--target", default="camvid",
                   help="unlabelled target: your camera's frames as a folder, a video or a bag (ROS 1 .bag, "
                        "rosbag2 folder, .db3 or .mcap); or 'camvid' (CamVid train frames) or camvid:0001TP "
                        "(the dusk sequence's adaptation frames)")
    _add_target_frame_options(p)
    p.add_argument("--fresh", action="store_true",
                   help="ignore finished stages of an earlier, interrupted run with the same settings "
                        "(by default they are reused: a killed run resumes)")
    p.add_argument("--camvid-root", default=None, help="CamVid folder (default ../shared/data/segmentation/camvid)")
    p.add_argument("--out", default="models/madan_multi.pt", help="where the MADAN checkpoint goes")
    p.add_argument("--baselines", action="store_true",
                   help="also train the comparison checkpoints (source-only x each + merged, single-source "
                        "adaptation x each, oracle) into the --out folder")
    p.add_argument("--preset", default="gpu", choices=["gpu", "gpu-gan", "gpu-fast", "cpu-small", "tiny"],
                   help="sizes and iteration counts (gpu-fast: bf16 autocast, GAN batch 16, identity term; "
                        "cpu-small: 48x64 scenes and small GANs for a CPU-scale comparison)")
    p.add_argument("--gan-batch", type=int, default=None,
                   help="images per source per pixel-level (GAN) step, instead of the preset's")
    p.add_argument("--parallel", action="store_true",
                   help="run independent stages as parallel processes on the device (needs --baselines); "
                        "--time-budget is then the wall time of the whole run")
    p.add_argument("--seg-seconds", type=float, default=60.0,
                   help="with --parallel: cap on each segmenter's training time (it stops earlier at its iterations)")
    p.add_argument("--variants", default="",
                   help="with --parallel: also train these MADAN ablations beside it (comma-separated; 'noidt' = "
                        "without the identity term), written next to --out as <stem>_<variant>.pt")
    p.add_argument("--quick-eval", default=None,
                   help="afterwards write mIoU on CamVid val at the training resolution (a fast check) as JSON")
    p.add_argument("--time-budget", type=float, default=float("inf"),
                   help="seconds for the whole run, split over the stages (each stops at its iterations or "
                        "its share, whichever comes first)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="processes that render the source scenes")
    p.add_argument("--samples", default=None, help="write a PNG of rendered vs adapted source images")
    add_json_option(p, "write what was trained (iterations, seconds) as JSON")
    p.add_argument("--save-generators", action="store_true",
                   help="also keep each adapted checkpoint's source->target generators as <stem>_generators.pt "
                        "(to re-make the adapted scenes and retrain segmenters without the GAN stage)")


def _camvid_root(arg: Optional[str]) -> Path:
    from effdl_ros.data.camvid import default_root

    root = Path(arg) if arg else default_root()
    if not (root / "train").is_dir():
        raise DataError(f"CamVid folder {root} has no train/ subfolder (give --camvid-root)")
    return root


def _plan(args: argparse.Namespace):
    """The preset's Plan with the command line's time budget and GAN batch."""
    from effdl_ros.segmentation.train import PRESETS

    plan = PRESETS[args.preset]
    if math.isfinite(args.time_budget):
        plan = replace(plan, seconds=float(args.time_budget))
    if args.gan_batch is not None:
        if args.gan_batch < 1:
            raise ConfigError(f"--gan-batch must be at least 1, not {args.gan_batch}")
        plan = replace(plan, gan_batch=args.gan_batch)
    return plan


def _train_command(args: argparse.Namespace) -> str:
    """The command that reproduces this training run (for the model card)."""
    parts = ["effdl-ros", "train", "madan", "--sources", args.sources, "--target", args.target,
             "--preset", args.preset, "--seed", str(args.seed), "--out", str(args.out)]
    if args.image_topic:
        parts += ["--image-topic", args.image_topic]
    if args.target != "camvid":
        parts += ["--target-frames", str(args.target_frames)]
    if args.time_budget != float("inf"):
        parts += ["--time-budget", f"{args.time_budget:g}"]
    if args.gan_batch is not None:
        parts += ["--gan-batch", str(args.gan_batch)]
    if args.baselines:
        parts.append("--baselines")
    return " ".join(shlex.quote(p) for p in parts)


def _run_train(args: argparse.Namespace) -> int:
    import shutil

    import torch

    from effdl_ros.segmentation.domains import check_sources, load_target
    from effdl_ros.segmentation.train import train_all

    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    check_sources(sources, args.target)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device} asked for, but torch sees no CUDA device")
    _check_target_frames(args)
    custom_target = args.target != "camvid"
    if custom_target and args.parallel:
        raise ConfigError("--parallel trains the CamVid comparison; drop it to adapt to --target " + args.target)
    plan = _plan(args)
    needs_camvid = (not custom_target or args.target.startswith("camvid:") or args.baselines
                    or any(s.startswith("camvid:") for s in sources))
    root = _camvid_root(args.camvid_root) if needs_camvid else None
    out = Path(args.out)
    log = lambda m: print(m, flush=True)  # noqa: E731
    target = None
    if custom_target:
        target = load_target(args.target, height=plan.height, width=plan.width, camvid_root=root,
                             image_topic=args.image_topic, limit=args.target_frames)
        log(f"target: {target.description}")
    work_dir = out.parent / f".{out.stem}.stages"
    if args.fresh and work_dir.exists():
        shutil.rmtree(work_dir)
    if args.parallel:
        from effdl_ros.segmentation.parallel import train_all_parallel

        if not args.baselines:
            raise ConfigError("--parallel trains the whole comparison: add --baselines")
        if not math.isfinite(args.time_budget):
            raise ConfigError("--parallel needs --time-budget SECONDS (the wall time of the whole run)")
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        res = train_all_parallel(sources, root, out.parent, plan, device=args.device, seed=args.seed, madan_out=out,
                                 workers=args.workers, seconds=args.time_budget, seg_seconds=args.seg_seconds,
                                 variants=variants, samples_png=Path(args.samples) if args.samples else None,
                                 log=log, save_generators=args.save_generators)
    else:
        res = train_all(sources, root, out.parent, plan, device=args.device, seed=args.seed, madan_out=out,
                        baselines=args.baselines, samples_png=Path(args.samples) if args.samples else None,
                        workers=args.workers, log=log, save_generators=args.save_generators, target=target,
                        work_dir=work_dir)
        from effdl_ros.segmentation.model_card import write_madan_card

        card = write_madan_card(out, res.get("madan", {}), sources=sources,
                                target=target.description if target is not None else "CamVid train frames, unlabelled",
                                plan=plan,
                                seed=args.seed, command=_train_command(args))
        log(f"wrote {out} and its model card {card}")
        shutil.rmtree(work_dir, ignore_errors=True)
    if args.json:
        write_json(args.json, res, say=None)
    if args.quick_eval:
        from effdl_ros.segmentation.parallel import quick_eval

        paths = sorted(p for p in out.parent.glob("madan_*.pt") if not p.name.endswith("_generators.pt"))
        ev = quick_eval(paths, root or _camvid_root(args.camvid_root), device=args.device, height=plan.height, width=plan.width)
        for k, v in ev.items():
            print(f"quick eval (val at {plan.height}x{plan.width}) {k}: mIoU {100 * v['miou']:.1f}", flush=True)
        write_json(Path(args.quick_eval), ev, say=None)
    return 0


def _configure_segmenter(p: argparse.ArgumentParser) -> None:
    p.add_argument("--holdout", default="0006R0",
                   help="CamVid sequence left out of training and scored (none: train on every labelled frame)")
    p.add_argument("--dusk-labels", action="store_true",
                   help="with --holdout 0001TP: also train on the dusk sequence's first 40 frames' labels (the dusk "
                        "oracle); its last 22 are scored either way")
    p.add_argument("--size", default="240x320", help="training input size HxW (the model's scale 1)")
    p.add_argument("--net-width", type=float, default=1.0, help="TinySegNet width multiplier")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=6000)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--minutes", type=float, default=math.inf,
                   help="stop after this long with a resumable state; run the same command again to go on")
    p.add_argument("--scales", default="1.0,0.75,0.5", help="input scales scored on the held-out sequence")
    p.add_argument("--camvid-root", default=None)
    p.add_argument("--out", default="models/seg_supervised.pt")
    p.add_argument("--fresh", action="store_true", help="ignore a saved training state and start over")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (training and timing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe-check", default=None, metavar="JSON",
                   help="the --json of the same command with a sequence held out: its scores go into this model's "
                        "card as the estimate on sequences never seen (for a model trained on every frame)")
    add_json_option(p)


def _run_segmenter(args: argparse.Namespace) -> int:
    import torch

    from effdl_ros.bench.segmentation import scale_sweep
    from effdl_ros.data.camvid import DUSK, DUSK_ADAPT_FRAMES
    from effdl_ros.segmentation.domains import resize_pairs
    from effdl_ros.segmentation.model_card import write_segmenter_card
    from effdl_ros.segmentation.network import config_for, save_checkpoint
    from effdl_ros.segmentation.supervised import SupervisedPlan, sequences, split_by_sequence, train_supervised

    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
        scales = [float(v) for v in args.scales.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--size {args.size!r} must be HxW and --scales a list of numbers") from None
    if h < 32 or w < 32 or h % 16 or w % 16:
        raise ConfigError(f"--size {args.size}: each side must be a multiple of 16, at least 32")
    torch.set_num_threads(max(1, args.threads))
    root = _camvid_root(args.camvid_root)
    holdout = None if args.holdout in ("", "none") else args.holdout
    train_pairs, held = split_by_sequence(root, holdout, dusk_labels=args.dusk_labels)
    trained_on = sequences(train_pairs)
    plan = SupervisedPlan(height=h, width=w, net_width=args.net_width, batch=args.batch, lr=args.lr, iters=args.iters)
    check = _recipe_check(Path(args.recipe_check), plan) if args.recipe_check else None  # before an hour of training
    out = Path(args.out)
    state = out.with_suffix(".state")
    if args.fresh and state.exists():
        state.unlink()
    print(f"training on {len(train_pairs)} labelled CamVid frames {trained_on}; "
          f"held out: {holdout or 'nothing'} ({len(held)} frames)", file=sys.stderr)
    images, labels = resize_pairs(train_pairs, h, w)
    model, info = train_supervised(images, labels, plan, seed=args.seed, holdout=holdout, state_path=state,
                                   seconds=60.0 * args.minutes, log=lambda m: print(m, file=sys.stderr))
    if not info["finished"]:
        return 0
    cfg = config_for(width=args.net_width, input_hw=(h, w), trained_on=trained_on, holdout=holdout or "none")
    save_checkpoint(out, model, cfg, half=True)
    rows = scale_sweep(model, cfg, held, scales) if held else []
    for r in rows:
        hw = r["input_hw"]
        print(f"scale {r['scale']:.2f} ({hw[0]}x{hw[1]}): mIoU {100 * r['miou']:.1f} on {len(held)} frames of {holdout} "
              f"(never trained on), {r['ms_per_frame']:.1f} ms/frame, {r['macs'] / 1e6:.0f} MMAC")
    command = _command_line("train segmenter")
    held_what = (f"the last {len(held)} frames in time of {holdout} (dusk), its report frames; its first "
                 f"{DUSK_ADAPT_FRAMES} {'trained with their labels (dusk oracle)' if args.dusk_labels else 'were not used'}"
                 if holdout == DUSK else None)
    card = write_segmenter_card(out, info, plan=plan, seed=args.seed, command=command,
                                trained_on=trained_on, holdout=holdout, rows=rows,
                                threads=torch.get_num_threads(), recipe_check=check, held_what=held_what)
    print(f"model: {out}\ncard: {card}")
    if args.json:
        write_json(Path(args.json), {"model": str(out), "training": info, "plan": asdict(plan),
                                     "trained_on": trained_on, "holdout": holdout,
                                     "holdout_frames": len(held), "scored": held_what or f"every frame of {holdout}",
                                     "rows": rows}, say=None)
    return 0


def _recipe_check(path: Path, plan) -> dict:
    """The held-out run's report, refused unless it trained with this plan (else it estimates nothing)."""
    import json

    try:
        report = json.loads(path.read_text())
        rows, holdout = report["rows"], report["holdout"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"--recipe-check {path}: not the --json of `train segmenter` ({err})") from None
    if not rows or holdout in (None, "none"):
        raise DataError(f"--recipe-check {path}: that run held no sequence out, so it scores nothing unseen")
    theirs = report.get("plan")
    if theirs is not None and {k: v for k, v in theirs.items() if k != "checkpoint_every"} != \
            {k: v for k, v in asdict(plan).items() if k != "checkpoint_every"}:
        raise DataError(f"--recipe-check {path}: that run trained with another plan ({theirs})")
    return {"path": str(path), "holdout": holdout, "frames": report.get("holdout_frames"), "rows": rows,
            "trained_on": report.get("trained_on", {})}


def _configure_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", default=None, help="folder of frames (.jpg/.png)")
    p.add_argument("--labels", default=None, help="folder of single-channel .png masks, same stems, 11 = ignore")
    p.add_argument("--sequence", default=None,
                   help="instead of --images/--labels: every labelled frame of this CamVid sequence "
                        "(e.g. 0006R0; for 0001TP its 22 dusk report frames)")
    p.add_argument("--camvid-root", default=None, help="CamVid folder for --sequence (default: ../shared/data)")
    p.add_argument("--model", required=True, nargs="+",
                   help="checkpoint(s) written by `effdl-ros train madan|segmenter`; several are scored side by side")
    p.add_argument("--scale", type=float, default=1.0, help="input scale relative to each model's training size")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for the timing")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default cpu; docs/gpu.md)")
    add_json_option(p, 'write {"miou","per_class","pixel_acc","ms_per_frame"} (several models: {"rows": [...]})')


def _sequence_pairs(args: argparse.Namespace):
    """The held-out frames of --sequence, as `train segmenter --holdout` scores them: every labelled frame
    of the sequence (train and val splits); for the dusk sequence 0001TP its 22 report frames."""
    from effdl_ros.segmentation.supervised import split_by_sequence

    return split_by_sequence(_camvid_root(args.camvid_root), args.sequence)[1]


def _eval_pairs(args: argparse.Namespace):
    from effdl_ros.bench.segmentation import folder_pairs

    if args.sequence:
        if args.images or args.labels:
            raise ConfigError("give either --sequence or --images and --labels, not both")
        return _sequence_pairs(args)
    if not (args.images and args.labels):
        raise ConfigError("give --images and --labels (folders of frames and masks), or --sequence")
    return folder_pairs(Path(args.images), Path(args.labels))


def _run_eval(args: argparse.Namespace) -> int:
    import torch

    from effdl_ros.bench.segmentation import evaluate_pairs
    from effdl_ros.device import resolve_device
    from effdl_ros.segmentation.network import load_checkpoint

    if not 0.1 <= args.scale <= 2.0:
        raise ConfigError(f"--scale {args.scale} is outside 0.1..2.0")
    torch.set_num_threads(max(1, args.threads))
    pairs = _eval_pairs(args)[: args.max_frames or None]
    device = resolve_device(args.device, what="--device")
    where = "CPU" if device.type == "cpu" else str(device)
    keys = ("miou", "per_class", "pixel_acc", "ms_per_frame", "frames")
    rows = []
    for path in args.model:
        model, cfg = load_checkpoint(Path(path))
        r = evaluate_pairs(model.to(device), cfg, pairs, scale=args.scale, device=device)
        rows.append({"model": path, **{k: r[k] for k in keys}})
        print(f"{path}: mIoU {100 * r['miou']:.1f}  pixel acc {100 * r['pixel_acc']:.1f}  "
              f"{r['ms_per_frame']:.1f} ms/frame ({r['frames']} frames, {torch.get_num_threads()} threads, {where})")
    names = list(rows[0]["per_class"])
    print(f"  {'class':<11} " + " ".join(f"{Path(r['model']).stem[:14]:>14}" for r in rows))
    for name in names:
        cells = (r["per_class"][name] for r in rows)
        print(f"  {name:<11} " + " ".join(f"{'-' if v is None else f'{100 * v:.1f}':>14}" for v in cells))
    if args.json:
        payload = {k: rows[0][k] for k in keys} if len(rows) == 1 else {"rows": rows}
        write_json(Path(args.json), payload, say=None)
    return 0


def _configure_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", default=None, help="folder of madan_*.pt (default: the package's models/)")
    p.add_argument("--camvid-root", default=None)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    add_json_option(p)
    p.add_argument("--figure", default=None, help="also write a PNG of predictions on three val frames")
    p.add_argument("--sources", default="sunny,dusk",
                   help="the sources the checkpoints were trained from (as given to train madan)")
    p.add_argument("--eval-on", default="val", choices=["val", "dusk-report"],
                   help="CamVid val, or the dusk sequence's 22 report frames (target camvid:0001TP)")


def _run_bench(args: argparse.Namespace) -> int:
    import torch

    from effdl_ros.bench.segmentation import run_segmentation_benchmark, summary

    torch.set_num_threads(max(1, args.threads))
    if args.models:
        models = Path(args.models)
    else:
        from effdl_ros.resources import share_path

        models = share_path("models")
    sources = [x.strip() for x in args.sources.split(",") if x.strip()]
    rows = run_segmentation_benchmark(models, _camvid_root(args.camvid_root), args.max_frames, sources=sources,
                                      eval_on=args.eval_on)
    print(f"{'method':<62} {'mIoU':>6} {'pix acc':>8} {'ms/frame':>9}")
    for r in rows:
        tag = "  <- best single" if r["role"] == "best_single" else ""
        print(f"{r['method']:<62} {100 * r['miou']:6.1f} {100 * r['pixel_acc']:8.1f} {r['ms_per_frame']:9.1f}{tag}")
    s = summary(rows)
    if "madan_minus_best_single_points" in s:
        print(f"MADAN - best single-source: {s['madan_minus_best_single_points']:+.1f} mIoU points (goal >= +3)")
    if "madan_minus_merged_points" in s:
        print(f"MADAN - all sources merged: {s['madan_minus_merged_points']:+.1f} mIoU points (goal >= +3)")
    if "gap_closed" in s:
        print(f"share of the source-only -> oracle gap closed by MADAN: {100 * s['gap_closed']:.0f} % (goal >= 50 %)")
    print(f"CamVid {args.eval_on}, {rows[0]['frames']} frames, CPU, {torch.get_num_threads()} threads; "
          "times measured in this run")
    if args.json:
        write_json(Path(args.json), {"rows": rows, "summary": s}, say=None)
    if args.figure:
        from effdl_ros.bench.segmentation import qualitative_figure

        print(f"figure: {qualitative_figure(models, _camvid_root(args.camvid_root), Path(args.figure), sources=sources)}")
    return 0


def _configure_scales(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="checkpoint (default: the segmentation node's, models/seg_supervised.pt)")
    p.add_argument("--scales", default="1.0,0.75,0.5", help="input scales, as the node's budget picks them")
    p.add_argument("--camvid-root", default=None)
    p.add_argument("--sequence", default=None,
                   help="score every labelled frame of this CamVid sequence (e.g. 0006R0; for 0001TP its 22 dusk "
                        "report frames) instead of CamVid val")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default cpu; docs/gpu.md)")
    p.add_argument("--fp16", action="store_true", help="CUDA autocast to float16 (GPU only)")
    add_json_option(p)


def _run_scales(args: argparse.Namespace) -> int:
    import torch

    from effdl_ros.bench.segmentation import scale_sweep
    from effdl_ros.data.camvid import pairs
    from effdl_ros.segmentation.network import load_checkpoint

    torch.set_num_threads(max(1, args.threads))
    try:
        scales = [float(v) for v in args.scales.split(",")]
    except ValueError:
        raise ConfigError(f"--scales {args.scales!r} is not a comma-separated list of numbers") from None
    if not all(0.1 <= s <= 2.0 for s in scales):
        raise ConfigError(f"--scales {args.scales!r}: each scale must lie in 0.1..2.0")
    if args.model:
        path = Path(args.model)
    else:
        from effdl_ros.resources import share_path
        from effdl_ros.segmentation import DEFAULT_MODEL

        path = share_path(*DEFAULT_MODEL.split("/"))
    from effdl_ros.device import check_fp16, resolve_device

    device = resolve_device(args.device, what="--device")
    check_fp16(args.fp16, device, what="--fp16")
    model, cfg = load_checkpoint(path)
    if args.sequence:
        val, where = _sequence_pairs(args), f"CamVid {args.sequence}"
    else:
        val, where = pairs(_camvid_root(args.camvid_root), "val"), "CamVid val"
    val = val[: args.max_frames or None]
    rows = scale_sweep(model.to(device), cfg, val, scales, device=device, fp16=args.fp16)
    print(f"{'scale':>6} {'input':>9} {'MMACs':>8} {'of full':>8} {'mIoU':>6} {'ms/frame':>9}")
    for r in rows:
        hw = r["input_hw"]
        print(f"{r['scale']:6.3f} {hw[0]:>4}x{hw[1]:<4} {r['macs'] / 1e6:8.1f} {r['macs_fraction']:8.2f} "
              f"{100 * r['miou']:6.1f} {r['ms_per_frame']:9.1f}")
    print(f"{path.name} on {where} ({len(val)} frames), {device}{' fp16' if args.fp16 else ''}, "
          f"{torch.get_num_threads()} threads: MACs counted, "
          "mIoU and times (median over frames of the best of 3) measured in this run; the output is always "
          "upsampled to the frame's full size")
    if args.json:
        write_json(Path(args.json), {"model": str(path), "rows": rows}, say=None)
    return 0


def _configure_adabn(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="checkpoint to adapt (from `train segmenter` or `train madan`)")
    p.add_argument("--target", required=True,
                   help="your camera's unlabelled frames: a folder, a video or a bag (ROS 1 .bag, rosbag2 folder, "
                        ".db3 or .mcap); or camvid:0001TP (the dusk sequence's adaptation frames)")
    _add_target_frame_options(p)
    p.add_argument("--camvid-root", default=None)
    p.add_argument("--out", required=True, help="where the adapted checkpoint goes (its card beside it)")
    p.add_argument("--threads", type=int, default=2)
    add_json_option(p)


def _run_adabn(args: argparse.Namespace) -> int:
    import torch

    from effdl_ros.segmentation.adabn import adapt_batchnorm
    from effdl_ros.segmentation.domains import load_target
    from effdl_ros.segmentation.model_card import write_adabn_card
    from effdl_ros.segmentation.network import load_checkpoint, save_checkpoint

    _check_target_frames(args)
    torch.set_num_threads(max(1, args.threads))
    base, out = Path(args.model), Path(args.out)
    if out.resolve() == base.resolve():
        raise ConfigError(f"--out {out} is the model being adapted; write the adapted model to another file")
    model, cfg = load_checkpoint(base)
    h, w = (int(v) for v in cfg["input_hw"])
    root = _camvid_root(args.camvid_root) if args.target.startswith("camvid") else None
    target = load_target(args.target, height=h, width=w, camvid_root=root, image_topic=args.image_topic,
                         limit=args.target_frames)
    info = adapt_batchnorm(model, target.images)
    cfg = dict(cfg, adapted_to=target.description, adapted_by="adabn", adapted_from=base.name)
    save_checkpoint(out, model, cfg, half=True)
    command = _command_line("train adabn")
    card = write_adabn_card(out, info, base=base, target=target.description, command=command)
    print(f"adapted {info['batchnorm_layers']} batch-norm layers to {target.description}\n"
          f"model: {out}\ncard: {card}")
    if args.json:
        write_json(Path(args.json), {"model": str(out), "base": str(base), "target": target.description, **info},
                   say=None)
    return 0


def _configure_madan_adapt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the trained segmenter to adapt (e.g. models/seg_day.pt)")
    p.add_argument("--sources", default="camvid:0006R0,camvid:0016E5",
                   help="its labelled sources, camvid:SEQ or rendered styles (at least two)")
    p.add_argument("--target", required=True,
                   help="your camera's unlabelled frames: a folder, a video or a bag (ROS 1 .bag, rosbag2 folder, "
                        ".db3 or .mcap); or camvid:0001TP (the dusk sequence's adaptation frames)")
    _add_target_frame_options(p)
    p.add_argument("--camvid-root", default=None)
    p.add_argument("--out", required=True, help="where the adapted checkpoint goes (its card beside it)")
    p.add_argument("--gan-seconds", type=float, default=1500.0, help="time for the pixel-level (GAN) stage")
    p.add_argument("--gan-hw", default="60x80", help="the pixel-level stage's resolution, HxW")
    p.add_argument("--finetune-iters", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fresh", action="store_true", help="retrain the GAN stage even if an earlier run kept it")
    add_json_option(p)


def _run_madan_adapt(args: argparse.Namespace) -> int:
    import shutil

    import torch

    from effdl_ros.segmentation.domains import check_sources, load_source, load_target
    from effdl_ros.segmentation.madan_adapt import AdaptPlan, adapt_segmenter
    from effdl_ros.segmentation.model_card import write_madan_adapt_card
    from effdl_ros.segmentation.network import load_checkpoint, save_checkpoint

    _check_target_frames(args)
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    check_sources(sources, args.target)
    try:
        gh, gw = (int(v) for v in args.gan_hw.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--gan-hw {args.gan_hw!r} is not HxW, e.g. 60x80") from None
    if min(gh, gw) < 32:
        raise ConfigError(f"--gan-hw {args.gan_hw}: the patch discriminators need at least 32x32")
    if args.finetune_iters < 1:
        raise ConfigError(f"--finetune-iters must be at least 1, not {args.finetune_iters}")
    torch.set_num_threads(max(1, args.threads))
    base, out = Path(args.model), Path(args.out)
    if out.resolve() == base.resolve():
        raise ConfigError(f"--out {out} is the model being adapted; write the adapted model to another file")
    model, cfg = load_checkpoint(base)
    h, w = (int(v) for v in cfg["input_hw"])
    needs_camvid = args.target.startswith("camvid") or any(s.startswith("camvid:") for s in sources)
    root = _camvid_root(args.camvid_root) if needs_camvid else None
    target = load_target(args.target, height=h, width=w, camvid_root=root, image_topic=args.image_topic,
                         limit=args.target_frames)
    src = [(s, *load_source(s, height=h, width=w, n_rendered=1000, seed=args.seed + k, camvid_root=root))
           for k, s in enumerate(sources)]
    plan = AdaptPlan(gan_height=gh, gan_width=gw, gan_seconds=args.gan_seconds, finetune_iters=args.finetune_iters)
    work_dir = out.parent / f".{out.stem}.stages"
    if args.fresh:
        shutil.rmtree(work_dir, ignore_errors=True)
    log = lambda m: print(m, flush=True)  # noqa: E731
    tuned, info = adapt_segmenter(model, src, target.images, plan, seed=args.seed, work_dir=work_dir, log=log)
    cfg = dict(cfg, adapted_to=target.description, adapted_by="madan-adapt", adapted_from=base.name)
    save_checkpoint(out, tuned, cfg, half=True)
    card = write_madan_adapt_card(out, info, base=base, sources={s: int(len(x)) for s, x, _ in src},
                                  target=target.description, plan=plan, command=_command_line("train madan-adapt"))
    shutil.rmtree(work_dir, ignore_errors=True)
    print(f"model: {out}\ncard: {card}")
    if args.json:
        write_json(Path(args.json), {"model": str(out), "base": str(base), "target": target.description, **info},
                   say=None)
    return 0


def register(cli) -> None:
    cli.add("train", "madan", help="MADAN multi-source adaptation: rendered street sources -> CamVid (unlabelled)",
            configure=_configure_train, run=_run_train)
    cli.add("train", "segmenter", help="a segmenter on labelled CamVid frames, one sequence held out and scored",
            configure=_configure_segmenter, run=_run_segmenter)
    cli.add("train", "adabn", help="adapt a segmenter to your camera's unlabelled frames in seconds (batch-norm "
                                   "statistics, no labels, no gradients)",
            configure=_configure_adabn, run=_run_adabn)
    cli.add("train", "madan-adapt", help="MADAN on a trained segmenter: low-resolution pixel-level translation of "
                                         "its sources toward your camera, then fine-tuning with feature alignment",
            configure=_configure_madan_adapt, run=_run_madan_adapt)
    cli.add("eval", "segmentation", help="mIoU, per-class IoU, pixel accuracy, ms/frame of a segmentation model",
            configure=_configure_eval, run=_run_eval)
    cli.add("bench", "segmentation", help="source-only vs single-source vs MADAN vs oracle on CamVid val",
            configure=_configure_bench, run=_run_bench)
    cli.add("bench", "segmentation-scales", help="the node's budget knob: MACs, mIoU and ms/frame per input scale",
            configure=_configure_scales, run=_run_scales)


def _standalone(argv: Optional[Sequence[str]] = None) -> int:
    from effdl_ros.cli.registry import CommandRegistry

    reg = CommandRegistry()
    register(reg)
    parser = argparse.ArgumentParser(prog="python -m effdl_ros.cli.segmentation")
    groups = parser.add_subparsers(dest="group", required=True)
    subs = {}
    for c in reg.commands:
        if c.group not in subs:
            subs[c.group] = groups.add_parser(c.group).add_subparsers(dest="verb", required=True)
        sp = subs[c.group].add_parser(c.name, help=c.help)
        c.configure(sp)
        sp.set_defaults(_run=c.run)
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except EffdlError as err:
        print(f"effdl-ros: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_standalone())
