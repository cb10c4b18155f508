"""The domains MADAN adapts between: labelled sources and one unlabelled target.

Sources are rendered street scenes (a style of scenes.py: `sunny`, `dusk`, ...) or the labelled
frames of one real CamVid sequence (`camvid:0006R0`, `camvid:0016E5`). The target is CamVid's train
frames (`camvid`), one CamVid sequence (`camvid:0001TP`: the dusk sequence, of which only the first
frames in time are adaptation frames; the rest are kept for reporting and never read here), or the
robot's own recording: a folder of frames, a video or a bag (data/target_frames.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from effdl_ros.errors import ConfigError

CAMVID_PREFIX = "camvid:"


@dataclass
class TargetDomain:
    """Target frames (RGB uint8 [N, H, W, 3]); labels only where the data has them, and then read by
    the oracle alone, never by adaptation."""

    name: str
    images: np.ndarray
    labels: Optional[np.ndarray]
    description: str


def resize_pairs(pairs: Sequence[Tuple[Path, Path]], height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """CamVid (image, mask) pairs resized to height x width: images by area, masks by nearest."""
    import cv2

    from effdl_ros.data.camvid import load_pair

    imgs = np.zeros((len(pairs), height, width, 3), np.uint8)
    labs = np.zeros((len(pairs), height, width), np.uint8)
    for i, (ip, mp) in enumerate(pairs):
        img, lab = load_pair(ip, mp)
        imgs[i] = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        labs[i] = cv2.resize(lab, (width, height), interpolation=cv2.INTER_NEAREST)
    return imgs, labs


def camvid_sequence(spec: str) -> Optional[str]:
    """'camvid:0006R0' -> '0006R0'; anything else -> None."""
    return spec[len(CAMVID_PREFIX):] if spec.startswith(CAMVID_PREFIX) else None


def check_sources(sources: Sequence[str], target_spec: str) -> None:
    """At least two different sources, and no source that is the target itself."""
    from effdl_ros.segmentation.scenes import style

    if len(set(sources)) != len(sources) or len(sources) < 2:
        raise ConfigError(f"sources {','.join(sources)!r} must name at least two different domains")
    for s in sources:
        if camvid_sequence(s) is None:
            style(s)        # an unknown style is a ConfigError naming the known ones
        elif s == target_spec:
            raise ConfigError(f"source {s} is also the target: its labels would leak into adaptation")


def load_source(spec: str, *, height: int, width: int, n_rendered: int, seed: int, camvid_root: Path,
                workers: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Images [N, H, W, 3] and labels [N, H, W] of one labelled source domain."""
    seq = camvid_sequence(spec)
    if seq is None:
        from effdl_ros.segmentation.scenes import render_domain

        return render_domain(spec, n_rendered, seed=seed, height=height, width=width, workers=workers)
    from effdl_ros.data.camvid import DUSK, sequence_pairs

    if seq == DUSK:
        raise ConfigError(f"camvid:{DUSK} is the dusk target sequence; it cannot be a labelled source")
    return resize_pairs(sequence_pairs(camvid_root, seq), height, width)


def load_target(spec: str, *, height: int, width: int, camvid_root: Optional[Path] = None,
                image_topic: Optional[str] = None, limit: Optional[int] = None) -> TargetDomain:
    """The target domain named by `spec` ('camvid', 'camvid:SEQ', or a folder / video / bag path)."""
    from effdl_ros.data import camvid

    if spec == "camvid" or camvid_sequence(spec) is not None:
        if image_topic:
            raise ConfigError("--image-topic applies to a bag target, not to CamVid")
        seq = camvid_sequence(spec)
        if seq is None:
            pairs: List = camvid.pairs(Path(camvid_root), "train")[: limit or None]
            what = f"CamVid train, {len(pairs)} frames"
        elif seq == camvid.DUSK:
            pairs, report = camvid.dusk_split(Path(camvid_root))
            what = (f"CamVid {seq} (dusk), its first {len(pairs)} frames in time; the last {len(report)} "
                    "are report frames and were not read")
        else:
            pairs = camvid.sequence_pairs(Path(camvid_root), seq)
            what = f"CamVid {seq}, {len(pairs)} frames"
        imgs, labs = resize_pairs(pairs, height, width)
        return TargetDomain(spec, imgs, labs, what + " (labels read only by the oracle)")
    from effdl_ros.data.target_frames import read_target_frames

    frames = read_target_frames(spec, height=height, width=width, image_topic=image_topic, limit=limit)
    return TargetDomain(Path(spec).name or spec, frames.images, None, frames.describe() + " (no labels)")
