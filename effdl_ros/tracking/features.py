"""Hand-crafted multi-channel features for ROAM's heads: gradient-orientation histograms, colour
names and grey level in 4 x 4 pixel cells, vectorised in torch (no learned weights).

The kind of features that make CSRT and ECO-HC strong on CPUs (Danelljan et al.; Lukezic et al.),
re-derived here rather than copied:

- **HOG-like**: image gradient of the grey level ([-1, 0, 1] kernels), its orientation folded to
  [0, pi) and soft-binned into `ORIENT_BINS` unsigned bins (linear interpolation between the two
  nearest bins, weighted by the gradient magnitude), pooled into cells of 4 x 4 pixels with a
  7-tap tent kernel (stride 4), normalised by the gradient energy of the 3 x 3 cell neighbourhood
  and truncated at 0.5 (Dalal & Triggs-style clipping, relative to the neighbourhood mean), then rescaled to about [0, 1];
  plus one channel of normalised gradient energy (texture strength).
- **Colour names** (an approximation of van de Weijer et al.'s 11 basic colour terms): each pixel's
  soft membership of 11 colour prototypes (black, blue, brown, grey, green, orange, pink, purple,
  red, white, yellow) by a softmax over squared CIE Lab distances, averaged per cell. The learned
  32,768-entry lookup table of the original is not used (no third-party data in the package).
- **Grey level**: per-cell mean intensity, centred (-0.5..0.5).

Cell i of the output map is centred on window pixel 4 i, the convention of `roam.cell_grid` (and of
a stride-4 backbone): a window of S pixels gives a map of ceil(S / 4) cells.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

ORIENT_BINS = 9
#: 11 colour-name prototypes, sRGB 0..255 (typical members of each basic colour term)
COLOUR_NAMES: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ("black", (25, 25, 25)), ("blue", (40, 70, 190)), ("brown", (120, 75, 40)), ("grey", (128, 128, 128)),
    ("green", (60, 150, 60)), ("orange", (235, 135, 30)), ("pink", (235, 150, 185)),
    ("purple", (120, 50, 150)), ("red", (195, 30, 35)), ("white", (240, 240, 240)), ("yellow", (235, 225, 50)),
)
CN_TEMPERATURE = 400.0   # softmax temperature on squared Lab distances (Lab units^2)
HOG_CLIP = 0.5


def _srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] sRGB 0..255 -> CIE Lab (D65), [N, 3, H, W]."""
    c = rgb / 255.0
    lin = torch.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = torch.tensor([[0.4124 / 0.95047, 0.3576 / 0.95047, 0.1805 / 0.95047],
                      [0.2126, 0.7152, 0.0722],
                      [0.0193 / 1.08883, 0.1192 / 1.08883, 0.9505 / 1.08883]], dtype=rgb.dtype, device=rgb.device)
    xyz = torch.einsum("ij,njhw->nihw", m, lin)
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-8) ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


class HandCraftedFeatures(nn.Module):
    """RGB window crops [N, 3, S, S] (0..255) -> features [N, 22, ceil(S/4), ceil(S/4)].

    Channels: 0..8 orientation histogram, 9 gradient energy, 10..20 colour names, 21 grey
    (`channels` = 22 in all).
    """

    channels = ORIENT_BINS + 1 + len(COLOUR_NAMES) + 1

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("tent", torch.tensor([1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]) / 16.0, persistent=False)
        self.register_buffer("grey_w", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)
        protos = torch.tensor([p for _, p in COLOUR_NAMES], dtype=torch.float32).t().reshape(1, 3, len(COLOUR_NAMES), 1)
        self.register_buffer("proto_lab", _srgb_to_lab(protos).reshape(3, len(COLOUR_NAMES)).t().contiguous(),
                             persistent=False)
        # lookup table over RGB quantised to 32 levels per channel (as the original colour names are used)
        q = (torch.arange(32, dtype=torch.float32) * 8 + 4)
        rr, gg, bb = torch.meshgrid(q, q, q, indexing="ij")
        grid = torch.stack([rr, gg, bb]).reshape(1, 3, 32 * 32 * 32, 1)
        self.register_buffer("cn_table", self._soft_names(grid)[0, :, :, 0].t().contiguous(), persistent=False)
        self.register_buffer("bins", torch.arange(ORIENT_BINS, dtype=torch.float32).view(1, ORIENT_BINS, 1, 1),
                             persistent=False)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """Separable 7-tap tent [1 2 3 4 3 2 1] / 16, stride 4, centred on pixels 0, 4, 8, ... (edges
        replicated)."""
        c = x.shape[1]
        x = F.pad(x, (3, 3, 3, 3), mode="replicate")
        x = F.conv2d(x, self.tent.view(1, 1, 1, 7).expand(c, 1, 1, 7), stride=(1, 4), groups=c)
        return F.conv2d(x, self.tent.view(1, 1, 7, 1).expand(c, 1, 7, 1), stride=(4, 1), groups=c)

    def orientation(self, grey: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel soft orientation histogram [N, B, H, W] (magnitude-weighted) and magnitude."""
        g = F.pad(grey, (1, 1, 1, 1), mode="replicate")
        gx = g[:, :, 1:-1, 2:] - g[:, :, 1:-1, :-2]
        gy = g[:, :, 2:, 1:-1] - g[:, :, :-2, 1:-1]
        mag = torch.sqrt(gx * gx + gy * gy)
        theta = torch.atan2(gy, gx) % math.pi                      # unsigned orientation, [0, pi)
        pos = theta * (ORIENT_BINS / math.pi)                      # [N, 1, H, W], bin units
        d = (pos - self.bins).abs()
        d = torch.minimum(d, ORIENT_BINS - d)                      # circular distance to each bin centre
        return F.relu(1.0 - d) * mag, mag

    def _soft_names(self, rgb: torch.Tensor) -> torch.Tensor:
        lab = _srgb_to_lab(rgb)                                    # [N, 3, H, W]
        d2 = ((lab.unsqueeze(2) - self.proto_lab.t().view(1, 3, -1, 1, 1)) ** 2).sum(1)   # [N, 11, H, W]
        return torch.softmax(-d2 / CN_TEMPERATURE, dim=1)

    def colour_names(self, rgb: torch.Tensor) -> torch.Tensor:
        """Soft colour-name memberships [N, 11, H, W] through the 32^3-entry lookup table."""
        q = (rgb.clamp(0, 255) * (1.0 / 8.0)).long().clamp(max=31)
        idx = (q[:, 0] * 1024 + q[:, 1] * 32 + q[:, 2])           # [N, H, W]
        return self.cn_table[idx].permute(0, 3, 1, 2)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        grey = (rgb * self.grey_w).sum(1, keepdim=True) / 255.0   # [N, 1, H, W] 0..1
        hist, mag = self.orientation(grey)
        cells = self._pool(torch.cat([hist, mag, self.colour_names(rgb), grey], dim=1))
        h = cells[:, :ORIENT_BINS]
        energy = (h * h).sum(1, keepdim=True)
        norm = torch.sqrt(F.avg_pool2d(F.pad(energy, (1, 1, 1, 1), mode="replicate"), 3, stride=1) + 1e-3)
        hog = (h / norm).clamp(max=HOG_CLIP) * (1.0 / HOG_CLIP)
        m = cells[:, ORIENT_BINS:ORIENT_BINS + 1]
        texture = m / (m + 0.05)                                   # gradient energy, squashed to [0, 1)
        cn = cells[:, ORIENT_BINS + 1:ORIENT_BINS + 1 + len(COLOUR_NAMES)]
        g = cells[:, -1:] - 0.5
        return torch.cat([hog, texture, cn, g], dim=1)

    @staticmethod
    def macs(search_size: int) -> int:
        """Modelled multiply-accumulates of one window (per-pixel arithmetic counted by hand)."""
        px = search_size * search_size
        per_px = 3 + 6 + 4 * ORIENT_BINS + 20 + 4 * len(COLOUR_NAMES) + 2 * 7 * (ORIENT_BINS + 2 + len(COLOUR_NAMES)) // 4
        return int(px * per_px)
