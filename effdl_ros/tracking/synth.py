"""Synthetic-motion training clips made of real pixels, rendered straight into search windows.

No tracking data set can be downloaded here, so meta-training clips are built from real images
(CamVid train frames as backgrounds and object textures, real handwritten digits as object shapes):
the target moves, scales, changes aspect and brightness, is blurred and occluded, and distractors
(sometimes copies of the target's own texture) cross the scene; the camera pans and zooms.

All images sit in one texture atlas, so a whole batch of crops is one `grid_sample` call per layer
(fast on a GPU, usable on a CPU for small tests). Window convention, shared with the online tracker:
a window of side `side` (scene px) centred on c is resized to S x S; window pixel u maps to scene
point c + (u - (S-1)/2) * side / S.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from effdl_ros.errors import DataError

SCENE_W, SCENE_H = 480.0, 360.0


class Atlas:
    """Equal-size tiles (RGB textures or 1-channel masks) packed into one image for grid_sample."""

    def __init__(self, tiles: np.ndarray, device="cpu"):
        n, h, w, c = tiles.shape
        cols = int(math.ceil(math.sqrt(n)))
        rows = int(math.ceil(n / cols))
        atlas = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
        for i in range(n):
            r, q = divmod(i, cols)
            atlas[r * h:(r + 1) * h, q * w:(q + 1) * w] = tiles[i]
        self.n, self.h, self.w, self.cols, self.rows = n, h, w, cols, rows
        self.image = torch.from_numpy(atlas).permute(2, 0, 1).unsqueeze(0).float().to(device)

    def sample(self, index: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """Sample tile `index` [M] at tile-normalised coordinates uv [M, S, S, 2] in [-1, 1] (clamped).

        Returns [M, C, S, S].
        """
        m, s = uv.shape[0], uv.shape[1]
        uv = uv.clamp(-1, 1)
        row = torch.div(index, self.cols, rounding_mode="floor").float()
        col = (index % self.cols).float()
        # tile pixel -> atlas pixel (align_corners=False convention), keep half a pixel inside the tile
        px = (uv[..., 0] + 1) / 2 * (self.w - 1) + 0.5 + col.view(-1, 1, 1) * self.w
        py = (uv[..., 1] + 1) / 2 * (self.h - 1) + 0.5 + row.view(-1, 1, 1) * self.h
        gx = px / (self.cols * self.w) * 2 - 1
        gy = py / (self.rows * self.h) * 2 - 1
        grid = torch.stack([gx, gy], dim=-1).reshape(1, m * s, s, 2)
        out = F.grid_sample(self.image, grid, mode="bilinear", padding_mode="border", align_corners=False)
        c = self.image.shape[1]
        return out.reshape(c, m, s, s).permute(1, 0, 2, 3)


@dataclass
class TextureBank:
    textures: Atlas   # RGB real images (backgrounds and object textures)
    shapes: Atlas     # 1-channel real digit masks (object shapes)


def load_texture_bank(image_paths: Sequence[Path], digit_images: Optional[np.ndarray] = None,
                      size=(180, 240), device="cpu") -> TextureBank:
    """Real images resized to `size` (h, w) and digit masks (uint8 [N, s, s]) into atlases."""
    import cv2

    tiles = []
    for p in image_paths:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"cannot decode training image {p}")
        tiles.append(cv2.cvtColor(cv2.resize(bgr, (size[1], size[0]), interpolation=cv2.INTER_AREA),
                                  cv2.COLOR_BGR2RGB))
    if not tiles:
        raise DataError("no training images given for ROAM clips")
    if digit_images is None or len(digit_images) == 0:
        yy, xx = np.mgrid[-1:1:28j, -1:1:28j]
        digit_images = ((xx ** 2 + yy ** 2 < 0.8) * 255).astype(np.uint8)[None]
    return TextureBank(Atlas(np.stack(tiles), device), Atlas(np.asarray(digit_images, np.uint8)[..., None], device))


class ClipSampler:
    """Random clips: per clip, T frames of target/distractor/occluder/camera trajectories."""

    def __init__(self, bank: TextureBank, frames: int, search_size: int, device="cpu",
                 generator: Optional[torch.Generator] = None):
        self.bank, self.T, self.S, self.device, self.g = bank, frames, search_size, device, generator

    def _r(self, *shape):
        return torch.rand(*shape, generator=self.g).to(self.device)

    def _n(self, *shape):
        return torch.randn(*shape, generator=self.g).to(self.device)

    def _object(self, b: int, size_lo: float, size_hi: float, speed: float):
        """One moving object per clip: centre [B,T,2], size [B,T,2], texture and shape choices."""
        T = self.T
        side = torch.exp(math.log(size_lo) + self._r(b) * (math.log(size_hi) - math.log(size_lo)))
        aspect = torch.exp(self._n(b) * 0.45).clamp(0.3, 3.0)
        w0, h0 = side / aspect.sqrt(), side * aspect.sqrt()
        c0 = torch.stack([SCENE_W * (0.2 + 0.6 * self._r(b)), SCENE_H * (0.2 + 0.6 * self._r(b))], -1)
        acc = self._n(b, T, 2) * speed * side.view(b, 1, 1)
        v = torch.cumsum(acc, 1) + self._n(b, 1, 2) * speed * 2 * side.view(b, 1, 1)
        v[:, 0] = 0
        centre = c0[:, None] + torch.cumsum(v, 1)
        logs = torch.cumsum(self._n(b, T) * 0.04, 1)
        loga = torch.cumsum(self._n(b, T) * 0.03, 1)
        logs[:, 0] = 0
        loga[:, 0] = 0
        w = w0[:, None] * torch.exp(logs - loga / 2)
        h = h0[:, None] * torch.exp(logs + loga / 2)
        obj = {
            "centre": centre, "size": torch.stack([w, h], -1),
            "tex": (self._r(b) * self.bank.textures.n).long().clamp(max=self.bank.textures.n - 1),
            "src_c": (self._r(b, 2) * 1.2 - 0.6), "src_s": 0.15 + 0.35 * self._r(b, 2),
            "shape": (self._r(b) * 3).long(),                      # 0 rect, 1 ellipse, 2 digit
            "digit": (self._r(b) * self.bank.shapes.n).long().clamp(max=self.bank.shapes.n - 1),
            "gain": torch.exp(torch.cumsum(self._n(b, T) * 0.03, 1)),
        }
        return obj

    def sample(self, batch: int) -> dict:
        """Trajectories for `batch` clips (rendering happens in crops())."""
        b = batch
        target = self._object(b, 24, 110, 0.04)
        distractors = [self._object(b, 24, 110, 0.04) for _ in range(2)]
        for d in distractors:   # 40%: the distractor wears the target's own texture (hard negative)
            same = self._r(b) < 0.4
            d["tex"] = torch.where(same, target["tex"], d["tex"])
            d["src_c"] = torch.where(same[:, None], target["src_c"], d["src_c"])
            d["src_s"] = torch.where(same[:, None], target["src_s"], d["src_s"])
            d["shape"] = torch.where(same, target["shape"], d["shape"])
            d["digit"] = torch.where(same, target["digit"], d["digit"])
            d["on"] = self._r(b) < 0.7
        occ = self._object(b, 30, 120, 0.08)
        occ["on"] = self._r(b) < 0.35
        cam = {
            "bg": (self._r(b) * self.bank.textures.n).long().clamp(max=self.bank.textures.n - 1),
            "shift": torch.cumsum(self._n(b, self.T, 2) * 3.0, 1),
            "zoom": torch.exp(torch.cumsum(self._n(b, self.T) * 0.01, 1)),
            "blur": self._r(b, self.T) < 0.15,
        }
        return {"target": target, "distractors": distractors, "occluder": occ, "camera": cam}

    def gt(self, clip: dict) -> torch.Tensor:
        """Ground-truth scene boxes (cx, cy, w, h) [B, T, 4]."""
        t = clip["target"]
        return torch.cat([t["centre"], t["size"]], -1)

    def crops(self, clip: dict, t: torch.Tensor, centre: torch.Tensor, side: torch.Tensor,
              stretch: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Render windows for frame indices t [B, n] centred at centre [B, n, 2] with side [B, n]

        (stretch [B, n, 2]: per-axis side factors for aspect augmentation). Returns [B, n, 3, S, S].
        """
        b, n = t.shape
        S = self.S
        m = b * n
        bi = torch.arange(b, device=self.device).view(b, 1).expand(b, n).reshape(m)
        ti = t.reshape(m)
        u = (torch.arange(S, device=self.device, dtype=torch.float32) - (S - 1) / 2) / S
        sx = side.reshape(m, 1) * (stretch[..., 0].reshape(m, 1) if stretch is not None else 1)
        sy = side.reshape(m, 1) * (stretch[..., 1].reshape(m, 1) if stretch is not None else 1)
        px = centre.reshape(m, 2)[:, 0:1] + u.view(1, S) * sx          # [M, S] scene x per column
        py = centre.reshape(m, 2)[:, 1:2] + u.view(1, S) * sy          # [M, S] scene y per row
        P = torch.stack([px[:, None, :].expand(m, S, S), py[:, :, None].expand(m, S, S)], -1)

        cam = clip["camera"]
        zoom = cam["zoom"][bi, ti].view(m, 1, 1, 1)
        shift = cam["shift"][bi, ti].view(m, 1, 1, 2)
        scene_c = torch.tensor([SCENE_W / 2, SCENE_H / 2], device=self.device)
        bg_uv = ((P - scene_c - shift) / zoom) / scene_c
        img = self.bank.textures.sample(cam["bg"][bi], bg_uv)

        def layer(obj, img):
            c = obj["centre"][bi, ti].view(m, 1, 1, 2)
            half = obj["size"][bi, ti].view(m, 1, 1, 2) / 2
            q = (P - c) / half                                     # object-normalised coordinates
            tex = self.bank.textures.sample(obj["tex"][bi], obj["src_c"][bi].view(m, 1, 1, 2)
                                            + q * obj["src_s"][bi].view(m, 1, 1, 2))
            tex = tex * obj["gain"][bi, ti].view(m, 1, 1, 1)
            shape = obj["shape"][bi].view(m, 1, 1)
            rect = ((1 - q.abs()) * 8).clamp(0, 1).prod(-1)
            ell = ((1 - (q ** 2).sum(-1)) * 4).clamp(0, 1)
            dig = self.bank.shapes.sample(obj["digit"][bi], q * 1.15)[:, 0] / 255.0
            dig = dig * (q.abs().amax(-1) < 1).float()
            alpha = torch.where(shape == 0, rect, torch.where(shape == 1, ell, dig)).unsqueeze(1)
            if "on" in obj:
                alpha = alpha * obj["on"][bi].float().view(m, 1, 1, 1)
            return img * (1 - alpha) + tex * alpha

        for d in clip["distractors"]:
            img = layer(d, img)
        img = layer(clip["target"], img)
        img = layer(clip["occluder"], img)
        blur = cam["blur"][bi, ti]
        if bool(blur.any()):
            k = torch.tensor([1, 4, 6, 4, 1], device=self.device, dtype=torch.float32)
            k2 = (k[:, None] * k[None, :] / 256).expand(3, 1, 5, 5)
            blurred = F.conv2d(F.pad(img, (2, 2, 2, 2), mode="replicate"), k2, groups=3)
            img = torch.where(blur.view(m, 1, 1, 1), blurred, img)
        return img.clamp(0, 255).reshape(b, n, 3, S, S)


def window_box(scene_box: torch.Tensor, centre: torch.Tensor, side: torch.Tensor, search_size: int,
               stretch: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Scene (cx, cy, w, h) -> window-pixel (cx, cy, w, h) for a window (centre, side[, stretch])."""
    k = search_size / side.unsqueeze(-1)
    if stretch is not None:
        k = k / stretch
    c = (scene_box[..., :2] - centre) * k + (search_size - 1) / 2
    return torch.cat([c, scene_box[..., 2:] * k], -1)
