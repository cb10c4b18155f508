"""A compact encoder-decoder segmenter for CPU inference, and its safe checkpoint format.

MADAN's segmenter is FCN8s-VGG16 (134M parameters), far too big for a robot's CPU. We use an
LR-ASPP-style net (Howard et al., MobileNetV3, ICCV 2019): a strided conv encoder to 1/16, a head
that gates 1x1 features with a global-pool attention branch, one skip from 1/4, bilinear upsampling.
It is trained from scratch by this project's own commands (no pretrained weights are downloaded).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from effdl_ros.atomic_io import atomic_torch_save, path_inside, safe_torch_load
from effdl_ros.data.camvid import CLASSES
from effdl_ros.errors import DataError

ARCH = "lraspp_tiny"


def _cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, ch: int, dilation: int = 1):
        super().__init__()
        self.body = nn.Sequential(_cbr(ch, ch, 1, dilation),
                                  nn.Conv2d(ch, ch, 3, 1, dilation, dilation, bias=False), nn.BatchNorm2d(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class TinySegNet(nn.Module):
    """LR-ASPP-style segmenter; widths scale with ``width`` (1.0 = 24/48/96/128 channels).

    forward(x) returns per-class scores at the input resolution; ``features(x)`` the 1/4 score map
    that MADAN's feature-level alignment discriminates.
    """

    def __init__(self, num_classes: int = len(CLASSES), width: float = 1.0):
        super().__init__()
        c1, c2, c3, c4 = (max(8, int(round(c * width))) for c in (24, 48, 96, 128))
        self.num_classes, self.width = num_classes, width
        self.stem = _cbr(3, c1, 2)                                   # 1/2
        self.stage2 = nn.Sequential(_cbr(c1, c2, 2), _Residual(c2))  # 1/4
        self.stage3 = nn.Sequential(_cbr(c2, c3, 2), _Residual(c3))  # 1/8
        self.stage4 = nn.Sequential(_cbr(c3, c4, 2), _Residual(c4, 2), _Residual(c4, 4))  # 1/16
        head = 64 if width >= 1.0 else max(16, int(64 * width))
        self.cbr = nn.Sequential(nn.Conv2d(c4, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU(inplace=True))
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c4, head, 1), nn.Sigmoid())
        self.low = nn.Conv2d(c2, num_classes, 1)
        self.high = nn.Sequential(_cbr(head + c2, head), nn.Conv2d(head, num_classes, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        s2 = self.stage2(self.stem(x))
        s4 = self.stage4(self.stage3(s2))
        y = self.cbr(s4) * self.scale(s4)
        y = F.interpolate(y, size=s2.shape[-2:], mode="bilinear", align_corners=False)
        return self.low(s2) + self.high(torch.cat([y, s2], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.features(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


def build(config: Dict[str, Any]) -> TinySegNet:
    if config.get("arch", ARCH) != ARCH:
        raise DataError(f"unknown segmentation architecture {config.get('arch')!r} (expected {ARCH!r})")
    return TinySegNet(int(config.get("num_classes", len(CLASSES))), float(config.get("width", 1.0)))


def to_input(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] RGB -> float [N, 3, H, W] in [-1, 1] (the GANs use the same range)."""
    return images_uint8.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def config_for(num_classes: int = len(CLASSES), width: float = 1.0, input_hw: Sequence[int] = (120, 160),
               classes: Optional[Sequence[str]] = None, **extra: Any) -> Dict[str, Any]:
    cfg = {"arch": ARCH, "num_classes": int(num_classes), "width": float(width),
           "input_hw": [int(input_hw[0]), int(input_hw[1])],
           "classes": list(classes if classes is not None else CLASSES[:num_classes])}
    cfg.update(extra)
    return cfg


def save_checkpoint(path: Path, model: nn.Module, config: Dict[str, Any], *, half: bool = False) -> None:
    """Atomic save: temp file in the same folder, fsync, rename (a reader never sees half a file).

    :param half: store floating tensors as float16 (half the file; loading casts back to float32).
    """
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    atomic_torch_save({"state_dict": state, "config": config}, path)


def load_checkpoint(path: Path, map_location: str = "cpu", *, model_dir: Optional[Path] = None
                    ) -> Tuple[TinySegNet, Dict[str, Any]]:
    """Load with weights_only=True (no arbitrary unpickling); any malformed file -> one DataError.

    :param model_dir: when given, the file must lie inside it (a node refuses weights from elsewhere).
    """
    path = path_inside(path, model_dir, what="segmentation model") if model_dir is not None else Path(path)
    blob = safe_torch_load(path, map_location=map_location, what="segmentation model")
    if not isinstance(blob, dict) or "state_dict" not in blob or "config" not in blob:
        raise DataError(f"segmentation model {path} lacks 'state_dict' and 'config' entries")
    model = build(blob["config"])
    state = blob["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"segmentation model {path} has a malformed state_dict")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except Exception as err:  # noqa: BLE001
        raise DataError(f"segmentation model {path} does not match its config: {str(err).splitlines()[0]}") from None
    model.eval()
    return model, dict(blob["config"])


def count_macs(model: nn.Module, input_hw: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass at input_hw (convs and linear layers)."""
    total = [0]

    def hook(mod, _inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total[0] += out.numel() // out.shape[0] * k
        elif isinstance(mod, nn.Linear):
            total[0] += out.numel() // out.shape[0] * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros(1, 3, int(input_hw[0]), int(input_hw[1]), device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total[0]
