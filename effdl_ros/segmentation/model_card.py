"""The model card written beside a checkpoint that `effdl-ros train madan` made.

A card says what data trained the model (every source, the target recording and how many of its
frames), the exact command, and what each stage did, so that a deployed model stays traceable.
"""
from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Dict, Optional, Sequence

from effdl_ros.atomic_io import atomic_write_bytes


def card_path(checkpoint: Path) -> Path:
    return Path(checkpoint).with_suffix(".md")


def write_madan_card(checkpoint: Path, info: Dict, *, sources: Sequence[str], target: str, plan, seed: int,
                     command: str) -> Path:
    """Write <checkpoint stem>.md (atomically) and return its path."""
    from effdl_ros.segmentation.domains import camvid_sequence

    checkpoint = Path(checkpoint)
    src_lines = []
    for s in sources:
        seq = camvid_sequence(s)
        src_lines.append(f"- `{s}`: " + (f"CamVid sequence {seq}, every labelled frame of it we have (train and val)"
                                         if seq else f"{plan.n_source} procedurally rendered scenes, style `{s}`, "
                                                     "exact labels"))
    plan_items = {k: v for k, v in asdict(plan).items() if not isinstance(v, float) or math.isfinite(v)}
    stages = "\n".join(f"| {k} | {v} |" for k, v in sorted(info.items()) if k != "path")
    text = f"""# {checkpoint.stem}: MADAN segmentation adapted to a target camera

Made by `effdl_ros.segmentation.train.train_all` (seed {seed}) with:

    {command}

## Data
Labelled sources:
{chr(10).join(src_lines)}

Target (unlabelled; no target label was read for adaptation): {target}.

## Model
TinySegNet (width {plan.seg_width}) at {plan.height}x{plan.width}, CamVid's 11 classes; float16 storage.
Load it in the `segmentation` node with `model_path:={checkpoint.name}` (it must lie inside the node's
`model_dir`) or hot-swap it with an effdl_ros/ModelUpdate.

## What training did (measured on the machine that ran it)
| item | value |
| --- | --- |
{stages}

Plan: `{plan_items}`

Not measured here: accuracy on the target (it has no labels). Score it with
`effdl-ros eval segmentation --images DIR --labels DIR --model {checkpoint.name}` on a few labelled frames
of the target camera that were not among the adaptation frames.
"""
    path = card_path(checkpoint)
    atomic_write_bytes(path, text.encode())
    return path


def write_segmenter_card(checkpoint: Path, info: Dict, *, plan, seed: int, command: str, trained_on: Dict[str, int],
                         holdout, rows: Sequence[Dict], threads: int, recipe_check: Optional[Dict] = None,
                         held_what: Optional[str] = None) -> Path:
    """The card of a `train segmenter` checkpoint: data by sequence, command, and its held-out scores.

    recipe_check: for a model trained on every frame, the report of the same command with one sequence
    held out, quoted as the estimate of this model on sequences it never saw. held_what: what the scored
    frames are (default: every labelled frame of the held-out sequence)."""
    checkpoint = Path(checkpoint)
    data = ", ".join(f"{seq} ({n} frames)" for seq, n in trained_on.items())

    def table(rs: Sequence[Dict]) -> str:
        body = "\n".join(f"| {r['scale']:.2f} | {r['input_hw'][0]}x{r['input_hw'][1]} | {r['macs'] / 1e6:.0f} | "
                         f"{100 * r['miou']:.1f} | {r['ms_per_frame']:.1f} |" for r in rs)
        return f"| scale | input | MMAC | mIoU | ms/frame |\n| --- | --- | ---: | ---: | ---: |\n{body}"

    how = ("labels at 360x480, class 11 ignored; ms/frame: preprocessing + forward + upsampling to 360x480 + "
           "argmax, batch 1, median of the best of 3 per frame")
    if rows:
        scored = f"""## Scores on frames of {holdout} it never saw (measured)
{table(rows)}

Scored on {held_what or f"every labelled frame of {holdout} (train and val splits)"}; {how}; {threads} torch threads."""
    elif recipe_check:
        c = recipe_check
        seen = ", ".join(f"{seq} ({n})" for seq, n in c.get("trained_on", {}).items())
        scored = f"""## Scores
Every labelled frame trained this model, so nothing is left to score it on here. The same command with
`--holdout {c['holdout']}` (trained on {seen}) scored on the {c['frames']} frames of {c['holdout']}, which it
never saw (measured, `{c['path']}`). That is the recipe's estimate on unseen sequences, not a
measurement of this file:

{table(c['rows'])}

{how}."""
    else:
        scored = "## Scores\nNo sequence was held out: score it on frames it never saw."
    held_line = (f"{holdout}'s report frames (below)" if rows and held_what else holdout or "nothing")
    text = f"""# {checkpoint.stem}: segmenter trained on labelled CamVid frames

Made by `effdl_ros.segmentation.supervised.train_supervised` (seed {seed}) with:

    {command}

## Data
Trained on CamVid's labelled train and val frames of: {data}. Held out: {held_line}.
CamVid's test split (held back for acceptance) was not used for anything.

## Model
TinySegNet (width {plan.net_width}) trained at {plan.height}x{plan.width} (scale 1), CamVid's 11 classes,
float16 storage; augmentation: flip, scale 1-1.5 and crop, colour (brightness, contrast, saturation),
Gaussian blur on a third of the images; AdamW lr {plan.lr}, cosine, batch {plan.batch}, class weights
1/sqrt(frequency).

## What training did
| item | value |
| --- | --- |
{chr(10).join(f"| {k} | {v} |" for k, v in sorted(info.items()))}

{scored}
"""
    path = card_path(checkpoint)
    atomic_write_bytes(path, text.encode())
    return path


def write_adabn_card(checkpoint: Path, info: Dict, *, base: Path, target: str, command: str) -> Path:
    """The card of an AdaBN-adapted checkpoint: which model it started from and which frames it saw."""
    checkpoint = Path(checkpoint)
    base_card = card_path(base)
    text = f"""# {checkpoint.stem}: `{Path(base).name}` adapted to a camera by batch-norm statistics (AdaBN)

Made by `effdl_ros.segmentation.adabn.adapt_batchnorm` with:

    {command}

## Data
Starting model: `{base}` (its card: `{base_card}`); every weight and bias is that model's.
Target (unlabelled; no label was read): {target}.

## What adaptation did
The running mean and variance of all {info['batchnorm_layers']} batch-norm layers were replaced by their
average over {info['frames']} target frames at the model's input size (batches of {info['batch']}).

## Scores
Not measured here: the target has no labels. Score it with `effdl-ros eval segmentation --images DIR
--labels DIR --model {checkpoint.name} {base}` on a few labelled frames of the target camera that were
not among the adaptation frames (side by side with the starting model).
"""
    path = card_path(checkpoint)
    atomic_write_bytes(path, text.encode())
    return path


def write_madan_adapt_card(checkpoint: Path, info: Dict, *, base: Path, sources: Dict[str, int], target: str, plan,
                           command: str) -> Path:
    """The card of a `train madan-adapt` checkpoint: the model it started from, its sources and target."""
    checkpoint = Path(checkpoint)
    rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(info.items()) if k != "pixel_last_terms")
    text = f"""# {checkpoint.stem}: `{Path(base).name}` adapted to a camera with MADAN

Made by `effdl_ros.segmentation.madan_adapt.adapt_segmenter` with:

    {command}

## Data
Starting model: `{base}` (its card: `{card_path(base)}`).
Labelled sources, translated toward the target and fine-tuned on: {', '.join(f'{k} ({v} frames)' for k, v in sources.items())}.
Target (unlabelled; no label was read): {target}.

## What adaptation did
Pixel level at {plan.gan_height}x{plan.gan_width} (CycleGAN generators with DSC, SAD and CCD; the change
upsampled onto the full-size frames), then {plan.finetune_iters} fine-tuning iterations on the translated
sources with feature-level alignment to the target (AdamW lr {plan.lr:g}, cosine, batch {plan.batch}).

| item | value |
| --- | --- |
{rows}

## Scores
Not measured by this command. Score it with `effdl-ros eval segmentation --model {checkpoint.name} {base}`
on labelled frames of the target camera that were not among the adaptation frames.
"""
    path = card_path(checkpoint)
    atomic_write_bytes(path, text.encode())
    return path
