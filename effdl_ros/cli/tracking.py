"""`effdl-ros train roam` and `effdl-ros eval tracking` (issue 5: ROAM tracker)."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from effdl_ros.cli.options import add_json_option, write_json
from effdl_ros.errors import ConfigError
from effdl_ros.resources import share_path, shared_data_dir


def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write, e.g. models/roam_hc16.pt")
    p.add_argument("--iterations", type=int, default=300, help="meta-training iterations (default 300)")
    p.add_argument("--batch", type=int, default=16, help="clips per iteration (default 16)")
    p.add_argument("--time-limit", type=float, default=math.inf, help="stop after this many seconds")
    p.add_argument("--images", type=Path, default=None,
                   help="folder of real training images (default: CamVid train in ../shared/data)")
    p.add_argument("--digits", type=Path, default=None,
                   help="OpenCV digits sheet for object shapes (default: ../shared/data/digits/opencv_digits.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr-backbone", type=float, default=1e-4)
    p.add_argument("--backbone", default="hog_cn", choices=("hog_cn", "resnet18_layer1"),
                   help="features: hand-crafted hog_cn (default, no weights) or resnet18_layer1 (trained here)")
    p.add_argument("--channels", type=int, default=16, help="compressed feature channels per head (default 16)")
    p.add_argument("--init-steps", type=int, default=0,
                   help="learned-optimiser steps on the first frame after the initialiser's step (default 0)")
    p.add_argument("--steps", type=int, default=3, help="learned-optimiser steps per training clip (default 3)")
    p.add_argument("--lookahead", type=int, default=4, help="frames per look-ahead window (default 4)")
    p.add_argument("--checkpoint-every", type=int, default=100,
                   help="write --out every N iterations when the rolling meta-loss improved (default 100)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")


def _run_train(a: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from effdl_ros.tracking.synth import load_texture_bank
    from effdl_ros.tracking.train import MetaTrainer, TrainSettings, default_image_paths, load_digit_masks, save_atomic

    if a.iterations < 1 or a.batch < 1:
        raise ConfigError("--iterations and --batch must be >= 1")
    torch.set_num_threads(max(1, a.threads))
    from effdl_ros.device import resolve_device

    device = str(resolve_device(a.device or "auto", what="--device"))
    if a.images is not None:
        paths = sorted(a.images.glob("*.jpg")) + sorted(a.images.glob("*.png"))
    else:
        paths = default_image_paths()
    if not paths:
        raise ConfigError(f"no training images found (looked in {a.images or shared_data_dir() / 'segmentation/camvid/train'})")
    digits = a.digits or shared_data_dir() / "digits" / "opencv_digits.png"
    bank = load_texture_bank(paths, load_digit_masks(digits), device=device)
    trainer = MetaTrainer(bank, TrainSettings(iterations=a.iterations, batch=a.batch, seed=a.seed,
                                              lr_backbone=a.lr_backbone, time_limit_s=a.time_limit,
                                              backbone=a.backbone, channels=a.channels, init_steps=a.init_steps,
                                              steps=a.steps, lookahead=a.lookahead),
                          device)
    bar = tqdm(total=a.iterations, desc="meta-training ROAM", unit="it")

    def progress(row):
        bar.update(1)
        bar.set_postfix(meta=f"{row['meta']:.4f}", after_updates=f"{row['after_updates']:.4f}")

    kept = {}

    def checkpoint(ck):          # the state with the lowest rolling meta-loss so far
        save_atomic(ck, a.out)
        kept["train"] = ck["train"]

    last = trainer.train(progress, checkpoint, checkpoint_every=max(1, a.checkpoint_every))
    bar.close()
    if not kept:                 # shorter than one checkpoint interval: keep the last state
        save_atomic(last, a.out)
        kept["train"] = last["train"]
    print(f"saved {a.out}: {kept['train']} (ran {last['train']['iterations']} iterations)")
    return 0


def _configure_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("sequences", nargs="+", type=Path, help="sequence folders (OTB, VOT or UAV123 layout)")
    p.add_argument("--trackers", default="roam,csrt,kcf,mil",
                   help="comma-separated: roam, roam:CHECKPOINT, roam-level0..4 (a budget level's knobs), "
                        "roam-untrained, csrt, kcf, mil (default roam,csrt,kcf,mil)")
    p.add_argument("--model", type=Path, default=None,
                   help="ROAM checkpoint (default models/roam_r18l1.pt, the node default)")
    add_json_option(p, "write results here")
    p.add_argument("--plot", type=Path, default=None, help="write the OTB success plot here (.png)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for torch and OpenCV (default 1: on a busy 2-core machine more threads slow both)")
    for name, default, help_ in (("update-interval", 5, "frames between model updates"),
                                 ("optimizer-steps", 2, "learned-optimiser steps per update"),
                                 ("search-size", 161, "window side in pixels (8k+1)")):
        p.add_argument(f"--{name}", type=int, default=default, help=f"roam: {help_} (default {default})")
    p.add_argument("--search-scales", default="1.0", help="roam: comma-separated window scales (default 1.0)")
    p.add_argument("--device", default="cpu", help="roam: cpu | cuda | cuda:N | auto (default cpu; docs/gpu.md)")


def default_model_path() -> Path:
    try:
        return share_path("models", "roam_r18l1.pt")
    except FileNotFoundError:
        return Path(__file__).resolve().parents[2] / "models" / "roam_r18l1.pt"


def _run_eval(a: argparse.Namespace) -> int:
    import cv2
    import torch

    from effdl_ros.data.sequences import load_sequence
    from effdl_ros.device import resolve_device
    from effdl_ros.tracking.baselines import OPENCV_TRACKERS, OpenCVTracker
    from effdl_ros.tracking.evaluate import evaluate, success_plot
    from effdl_ros.tracking.tracker import RoamTracker, TrackerSettings, load_model, move_model, random_model

    device = resolve_device(a.device, what="--device")
    torch.set_num_threads(max(1, a.threads))
    cv2.setNumThreads(max(1, a.threads))
    names = [n.strip() for n in a.trackers.split(",") if n.strip()]
    try:
        scales = tuple(float(x) for x in a.search_scales.split(","))
    except ValueError:
        raise ConfigError(f"--search-scales {a.search_scales!r} must be comma-separated numbers") from None
    settings = TrackerSettings(update_interval=a.update_interval, optimizer_steps=a.optimizer_steps,
                               search_scales=scales, search_size=a.search_size).validated()
    seqs = [load_sequence(p) for p in a.sequences]
    factories = {}
    for name in names:
        if name == "roam":
            model = move_model(load_model(a.model or default_model_path()), device)
            factories[name] = lambda m=model: RoamTracker(m, settings)
        elif name.startswith("roam:"):      # another checkpoint side by side, e.g. roam:models/roam_r18l1.pt
            model_x = move_model(load_model(Path(name[len("roam:"):])), device)
            factories[name] = lambda m=model_x: RoamTracker(m, settings)
        elif name.startswith("roam-level"):  # a budget level's knobs, e.g. roam-level0 .. roam-level4
            from dataclasses import replace

            from effdl_ros.tracking.tracker import LEVELS

            try:
                level = LEVELS[int(name[len("roam-level"):])]
            except (ValueError, IndexError):
                raise ConfigError(f"unknown tracker {name!r}; levels are roam-level0 .. roam-level{len(LEVELS) - 1}") from None
            model_l = move_model(load_model(a.model or default_model_path()), device)
            factories[name] = lambda m=model_l, lv=level: RoamTracker(m, replace(settings, **lv))
        elif name == "roam-untrained":
            model_u = move_model(random_model(0, settings.search_size), device)
            factories[name] = lambda m=model_u: RoamTracker(m, settings)
        elif name in OPENCV_TRACKERS:
            OpenCVTracker(name)  # fails early, with a clear message, if OpenCV lacks it
            factories[name] = lambda n=name: OpenCVTracker(n)
        else:
            raise ConfigError(f"unknown tracker {name!r}; choose from roam, roam-untrained, "
                              f"{', '.join(OPENCV_TRACKERS)}")
    result = evaluate(seqs, factories, progress=lambda t, s: print(f"running {t} on {s} ...", flush=True))
    result["settings"] = {"threads": a.threads, "device": str(device), "roam": {"update_interval": settings.update_interval,
                          "optimizer_steps": settings.optimizer_steps, "search_scales": list(settings.search_scales),
                          "search_size": settings.search_size}}
    _print_table(result)
    if a.json:
        write_json(a.json, result)
    if a.plot:
        success_plot(result, a.plot)
        print(f"wrote {a.plot}")
    return 0


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="tracking (OTB one-pass): success AUC / precision@20px / FPS (tracking only)")
    table.add_column("tracker")
    seqs = list(next(iter(result["trackers"].values()))["sequences"])
    for s in seqs:
        table.add_column(s, justify="right")
    table.add_column("mean", justify="right")
    for name, tr in result["trackers"].items():
        cells = [f"{v['auc']:.3f} / {v['precision20']:.3f} / {v['fps']:.1f}" for v in tr["sequences"].values()]
        table.add_row(name, *cells, f"{tr['mean_auc']:.3f} / {tr['mean_precision20']:.3f} / {tr['mean_fps']:.1f}")
    Console().print(table)


def register(cli) -> None:
    cli.add("train", "roam", help="meta-train the ROAM tracker on synthetic-motion clips of real images",
            configure=_configure_train, run=_run_train)
    cli.add("eval", "tracking", help="OTB one-pass evaluation: roam vs OpenCV trackers on sequence folders",
            configure=_configure_eval, run=_run_eval)
