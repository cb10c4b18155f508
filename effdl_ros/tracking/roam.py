"""ROAM's network: a truncated backbone and two heads whose base filters are resized per target.

Yang & Chan, "Recurrent Filter Learning for Visual Tracking" / ROAM: "Recurrently Optimizing Tracking
Model", CVPR 2020 (arXiv 1907.12006). Facts used (REFERENCES.md section 5): each head is a 1x1
compression conv then a conv whose BASE filter is bilinearly resized to the target's shape (area
scaled to the window's target area, / cell size, x1.5, odd); a response head (1 map) and a box head
(4 deltas per position, one anchor per position = the current target size); Gaussian label
exp(-0.2(x^2/sx^2 + y^2/sy^2)) with sigma 0.1 x target size in cells; response loss over
|pred - label| >= 0.1 weighted by e^label; smooth-L1 box loss on the 32 highest-IoU anchors.

Departures, for CPU speed: instead of VGG16 conv4_3, either hand-crafted features in 4 x 4 cells
(`backbone="hog_cn"`, the default since issue 16: orientation histograms, colour names, grey;
features.py) or ResNet-18 truncated after layer1 (`"resnet18_layer1"`, stride 4 = ROAM's cell size,
64 channels, trained by us: no pretrained weights can be downloaded here); a smaller search window
(default 161 px, not 281). The head parameters are plain tensors with a leading batch
dimension so that each clip (in meta-training) or each tracker (online) carries its own copy, which
the learned optimiser updates.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

CELL = 4          # backbone stride (pixels per feature cell)
CONTEXT = 5.0     # search window side = sqrt(w*h) * CONTEXT
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

Params = Dict[str, torch.Tensor]


@dataclass
class RoamConfig:
    search_size: int = 161      # window side in pixels after resizing (8k+1 keeps the centre on a cell)
    channels: int = 32          # compressed feature channels per head
    base_filter: int = 13       # base filter side (odd) = odd(1.5 * target side in cells) at search_size
    backbone: str = "hog_cn"    # "hog_cn" (hand-crafted, features.py) or "resnet18_layer1" (learned)

    def to_dict(self) -> dict:
        return asdict(self)


def odd(x: float) -> int:
    n = int(round(x))
    return n if n % 2 == 1 else n + 1


def base_filter_for(search_size: int) -> int:
    return odd(1.5 * search_size / CONTEXT / CELL)


BACKBONES = ("hog_cn", "resnet18_layer1")


def build_backbone(name: str = "resnet18_layer1") -> nn.Module:
    """The feature extractor: stride 4 (ROAM's cell size).

    "resnet18_layer1": torchvision ResNet-18 up to layer1, 64 channels (random init; weights from
    training); "hog_cn": hand-crafted orientation histograms + colour names + grey (no weights).
    """
    if name == "hog_cn":
        from effdl_ros.tracking.features import HandCraftedFeatures

        return HandCraftedFeatures()
    if name != "resnet18_layer1":
        raise ValueError(f"unknown ROAM backbone {name!r}; choose from {', '.join(BACKBONES)}")
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)


def feature_channels(name: str) -> int:
    if name == "hog_cn":
        from effdl_ros.tracking.features import HandCraftedFeatures

        return HandCraftedFeatures.channels
    return 64


def map_size(search_size: int) -> int:
    return (search_size + CELL - 1) // CELL


def filter_size(target_hw, search_size: int, max_side: int) -> Tuple[int, int]:
    """ROAM's resized-filter shape (kh, kw) for a target of (h, w) window pixels.

    The target is scaled to the window's nominal target area ((search_size / CONTEXT)^2) keeping its
    aspect ratio, divided by the cell size, times 1.5, made odd, and clamped to [3, max_side].
    """
    h, w = float(target_hw[0]), float(target_hw[1])
    side = search_size / CONTEXT
    aspect = math.sqrt(max(h, 1e-3) / max(w, 1e-3))
    kh = odd(1.5 * side * aspect / CELL)
    kw = odd(1.5 * side / aspect / CELL)
    return min(max(kh, 3), max_side), min(max(kw, 3), max_side)


class RoamNet(nn.Module):
    """Backbone + the functional heads. Head parameters live outside (see init_params)."""

    def __init__(self, config: RoamConfig = RoamConfig()):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone)
        self.in_channels = feature_channels(config.backbone)
        self.hand_crafted = config.backbone == "hog_cn"
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0)

    @property
    def max_filter(self) -> int:
        return min(2 * self.config.base_filter + 1, 2 * (map_size(self.config.search_size) // 2) - 1)

    def features(self, crops: torch.Tensor) -> torch.Tensor:
        """[N, 3, S, S] RGB 0..255 float -> [N, in_channels, ceil(S/4), ceil(S/4)]."""
        if self.hand_crafted:
            return self.backbone(crops)
        return self.backbone((crops - self.mean) / self.std)

    def init_params(self, generator: torch.Generator = None) -> Params:
        """Initial head parameters (no batch dimension): compression, base filter and bias per head."""
        c, k, d = self.config.channels, self.config.base_filter, self.in_channels
        g = generator

        def randn(*shape, std):
            return torch.randn(*shape, generator=g) * std

        return {
            "r_cw": randn(c, d, std=math.sqrt(2.0 / d)), "r_cb": torch.zeros(c),
            "r_f": randn(1, c, k, k, std=1e-3), "r_b": torch.zeros(1),
            "g_cw": randn(c, d, std=math.sqrt(2.0 / d)), "g_cb": torch.zeros(c),
            "g_f": randn(4, c, k, k, std=1e-3), "g_b": torch.zeros(4),
        }

    def resized_filters(self, base: torch.Tensor, fsize: torch.Tensor) -> torch.Tensor:
        """Bilinearly resize base filters [B, O, C, K, K] to each clip's (kh, kw) = fsize[b].

        B == 1 returns the exact [1*O, C, kh, kw] filter (online tracking: no wasted taps); B > 1 returns
        each clip's filter zero-padded to [B*O, C, kmax, kmax] (for a grouped conv; heads() calls this
        per clip instead, because grouped large-kernel convs train very slowly on CPUs).
        Filters are scaled by K^2/(kh*kw) so the response keeps its magnitude whatever the size.
        """
        b, o, c, k, _ = base.shape
        if b == 1:
            kh, kw = int(fsize[0, 0]), int(fsize[0, 1])
            f = F.interpolate(base.reshape(o, c, k, k), size=(kh, kw), mode="bilinear", align_corners=True)
            return f * (k * k / (kh * kw))
        kmax = self.max_filter
        fs = fsize.to(base.device, torch.float32)
        kh, kw = fs[:, 0], fs[:, 1]
        theta = torch.zeros(b, 2, 3, device=base.device)
        theta[:, 0, 0] = (kmax - 1) / (kw - 1)
        theta[:, 1, 1] = (kmax - 1) / (kh - 1)
        grid = F.affine_grid(theta, (b, o * c, kmax, kmax), align_corners=True)
        f = F.grid_sample(base.reshape(b, o * c, k, k), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=True)
        r = torch.arange(kmax, device=base.device, dtype=torch.float32) - (kmax - 1) / 2
        mask = ((r.view(1, kmax, 1).abs() <= (kh.view(b, 1, 1) - 1) / 2 + 1e-3)
                & (r.view(1, 1, kmax).abs() <= (kw.view(b, 1, 1) - 1) / 2 + 1e-3)).float()
        f = f * mask.unsqueeze(1) * (k * k / (kh * kw)).view(b, 1, 1, 1)
        return f.reshape(b * o, c, kmax, kmax)

    def heads(self, feats: torch.Tensor, params: Params, fsize: torch.Tensor,
              scales: Dict[str, torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Response [B, N, H, W] and box deltas [B, N, 4, H, W].

        feats: [B, N, D, H, W] (N samples per clip/tracker); params: each with a leading B dim;
        fsize: [B, 2] integer (kh, kw) of each clip's resized filter; scales: Random Filter Scaling
        factors [B] per filter (the stored parameter is theta/s, the network runs with theta*s).
        """
        b, n, d, h, w = feats.shape
        out = []
        for head, n_out in (("r", 1), ("g", 4)):
            cw, cb = params[f"{head}_cw"], params[f"{head}_cb"]
            x = F.relu(torch.einsum("bcd,bndhw->bnchw", cw, feats) + cb[:, None, :, None, None])
            base = params[f"{head}_f"]
            if scales is not None:
                base = base * scales[f"{head}_f"].view(-1, 1, 1, 1, 1)
            ys = []
            for i in range(b):   # one plain conv per clip: exact filter size, fast backward on CPU and GPU
                filt = self.resized_filters(base[i:i + 1], fsize[i:i + 1])
                ys.append(xcorr_same(x[i], filt))
            y = torch.stack(ys) + params[f"{head}_b"][:, None, :, None, None]
            out.append(y)
        return out[0][:, :, 0], out[1]


def xcorr_same(x: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
    """conv2d(x, filt, 'same' padding) for odd filters; through the FFT when several samples share it.

    The online update runs both heads forward and backward over the whole sample buffer; there the
    FFT product is ~2.7x faster on a CPU than a direct large-kernel convolution (measured: 69 vs 185 ms
    for 10 samples, 32 channels, 41x41 maps, a 13x17 filter). One sample (the per-frame search) stays
    direct, which is faster there. Both give the same result (relative difference ~1e-6).
    """
    kh, kw = filt.shape[-2], filt.shape[-1]
    if x.shape[0] < 4 or x.is_cuda:
        return F.conv2d(x, filt, padding=(kh // 2, kw // 2))
    h, w = x.shape[-2], x.shape[-1]
    size = (h + kh - 1, w + kw - 1)
    xf = torch.fft.rfft2(x, s=size)
    kf = torch.fft.rfft2(torch.flip(filt, dims=(-2, -1)), s=size)
    y = torch.fft.irfft2(torch.einsum("ncpq,ocpq->nopq", xf, kf), s=size)
    return y[..., kh // 2:kh // 2 + h, kw // 2:kw // 2 + w]


# ---------------------------------------------------------------- geometry, labels and losses

def cell_grid(search_size: int, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Window-pixel coordinates (x, y) of every feature cell centre, each [H, W]."""
    m = map_size(search_size)
    idx = torch.arange(m, device=device, dtype=torch.float32) * CELL
    yy, xx = torch.meshgrid(idx, idx, indexing="ij")
    return xx, yy


def gaussian_label(box: torch.Tensor, search_size: int) -> torch.Tensor:
    """ROAM label exp(-0.2 (dx^2/sx^2 + dy^2/sy^2)), sigma = 0.1 x target size in cells.

    box: [..., 4] window-pixel (cx, cy, w, h) -> [..., H, W].
    """
    xx, yy = cell_grid(search_size, box.device)
    cx, cy, w, h = [box[..., i, None, None] for i in range(4)]
    sx = (0.1 * w / CELL).clamp(min=0.5)
    sy = (0.1 * h / CELL).clamp(min=0.5)
    d = ((xx - cx) / CELL) ** 2 / sx ** 2 + ((yy - cy) / CELL) ** 2 / sy ** 2
    return torch.exp(-0.2 * d)


def response_loss(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Sum e^label (pred - label)^2 over |pred - label| >= 0.1, / (count + 1); one value per [B, N]."""
    diff = pred - label
    mask = (diff.abs() >= 0.1).float()
    num = (torch.exp(label) * diff ** 2 * mask).flatten(-2).sum(-1)
    return num / (mask.flatten(-2).sum(-1) + 1.0)


def encode_deltas(box: torch.Tensor, anchor_wh: torch.Tensor, search_size: int) -> torch.Tensor:
    """Regression targets (dx, dy, log dw, log dh) for every cell's anchor: [..., 4, H, W]."""
    xx, yy = cell_grid(search_size, box.device)
    aw, ah = anchor_wh[..., 0, None, None], anchor_wh[..., 1, None, None]
    cx, cy, w, h = [box[..., i, None, None] for i in range(4)]
    dx = (cx - xx) / aw
    dy = (cy - yy) / ah
    dw = torch.log(w / aw).expand_as(dx)
    dh = torch.log(h / ah).expand_as(dx)
    return torch.stack([dx, dy, dw, dh], dim=-3)


def decode_deltas(deltas: torch.Tensor, anchor_wh: torch.Tensor, search_size: int) -> torch.Tensor:
    """Inverse of encode_deltas: [..., 4, H, W] -> boxes (cx, cy, w, h) [..., 4, H, W]."""
    xx, yy = cell_grid(search_size, deltas.device)
    aw, ah = anchor_wh[..., 0, None, None], anchor_wh[..., 1, None, None]
    d = deltas.clamp(-4, 4)
    return torch.stack([xx + d[..., 0, :, :] * aw, yy + d[..., 1, :, :] * ah,
                        aw * torch.exp(d[..., 2, :, :]), ah * torch.exp(d[..., 3, :, :])], dim=-3)


def box_loss(pred: torch.Tensor, box: torch.Tensor, anchor_wh: torch.Tensor, search_size: int,
             top_k: int = 32) -> torch.Tensor:
    """Smooth-L1 on the top_k anchors closest in IoU to the target (equal-size anchors: nearest centres)."""
    target = encode_deltas(box, anchor_wh, search_size)                 # [B, N, 4, H, W]
    xx, yy = cell_grid(search_size, box.device)
    # All anchors share one size, so the highest-IoU anchors are those with the nearest centres.
    dist = (xx - box[..., 0, None, None]) ** 2 + (yy - box[..., 1, None, None]) ** 2
    k = min(top_k, dist.shape[-1] * dist.shape[-2])
    idx = dist.flatten(-2).topk(k, dim=-1, largest=False).indices      # [B, N, k]
    p = pred.flatten(-2).gather(-1, idx.unsqueeze(-2).expand(*idx.shape[:-1], 4, k))
    t = target.flatten(-2).gather(-1, idx.unsqueeze(-2).expand(*idx.shape[:-1], 4, k))
    return F.smooth_l1_loss(p, t, reduction="none", beta=1.0 / 9).mean(dim=(-1, -2))


def tracking_loss(net: RoamNet, feats: torch.Tensor, params: Params, fsize, boxes: torch.Tensor,
                  anchors: torch.Tensor, scales=None, box_weight: float = 1.0,
                  search_size: int = None) -> torch.Tensor:
    """Mean over samples of response loss + box loss, per clip: [B] (search_size: the windows' side)."""
    s = search_size or net.config.search_size
    resp, deltas = net.heads(feats, params, fsize, scales)
    label = gaussian_label(boxes, s)
    return (response_loss(resp, label) + box_weight * box_loss(deltas, boxes, anchors, s)).mean(dim=1)
