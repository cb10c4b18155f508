"""The model card written beside a checkpoint that `effdl-ros train madan` made.

A card says what data trained the model (every source, the target recording and how many of its
frames), the exact command, and what each stage did, so that a deployed model stays traceable.
"""
from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Dict, Sequence

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
