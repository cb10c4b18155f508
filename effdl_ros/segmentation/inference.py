"""One frame in, class ids out: the same path for evaluation, benchmarks and the node."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np


def input_size(config: Dict, scale: float = 1.0) -> Tuple[int, int]:
    """(height, width) fed to the network: the training size times scale, rounded to multiples of 8."""
    h, w = config.get("input_hw", (120, 160))
    return tuple(max(16, int(round(v * scale / 8.0)) * 8) for v in (h, w))  # type: ignore[return-value]


def predict(model, config: Dict, rgb: np.ndarray, *, scale: float = 1.0, device="cpu",
            out_hw: Optional[Tuple[int, int]] = None, fp16: bool = False) -> np.ndarray:
    """Class ids uint8 [H, W] for one RGB uint8 frame, at the frame's size (or out_hw).

    :param scale: multiplies the model's input size (the budget knob: 0.5 = about a quarter of the MACs).
    :param device: where the model is; the resized uint8 frame is copied there (pinned, non-blocking on
        a GPU: a quarter of the bytes of the float tensor) and converted there.
    :param fp16: CUDA autocast to float16 (scores come back as float32).
    """
    import cv2
    import torch

    from effdl_ros.device import autocast, to_device
    from effdl_ros.segmentation.network import to_input

    h, w = input_size(config, scale)
    small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    with torch.no_grad(), autocast(device, fp16):
        x = to_input(to_device(np.ascontiguousarray(small)[None], device))
        scores = model(x)[0].permute(1, 2, 0).contiguous().float().cpu().numpy()  # [h, w, C]
    oh, ow = out_hw or rgb.shape[:2]
    if (oh, ow) != scores.shape[:2]:
        # Bilinear upsampling of the class scores (half-pixel centres, as torch's align_corners=False),
        # then argmax over the contiguous last axis: ~4x faster on a CPU than torch's channel argmax.
        scores = cv2.resize(scores, (ow, oh), interpolation=cv2.INTER_LINEAR)
        if scores.ndim == 2:  # a one-class model: cv2 drops the channel axis
            scores = scores[..., None]
    return scores.argmax(-1).astype(np.uint8)


def overlay(rgb: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """RGB uint8: the frame blended with each pixel's class colour (ids outside the palette: black)."""
    pal = np.concatenate([palette, np.zeros((256 - len(palette), 3), np.uint8)], 0)
    colours = pal[labels]
    return (rgb.astype(np.float32) * (1.0 - alpha) + colours.astype(np.float32) * alpha).round().astype(np.uint8)
