"""ROAM's online tracking loop, with the knobs an energy budget drives in one settings dataclass.

ROAM (CVPR 2020, arXiv 1907.12006; REFERENCES.md section 5), online part: first frame -> one
meta-initialiser step on augmented patches; each frame: search window (side sqrt(w*h) x 5), response
+ box regression, scale/ratio penalty exp(-(dscale*dratio - 1) k) and a Gaussian motion prior
(sigma 0.5 x target size), drift handling (low confidence -> freeze size and model, search a widening window; see RoamTracker
model), size update rate = penalty x score x 0.6; every N frames a few learned-optimiser steps on a
small sample buffer, with the filters resized to the new target size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from effdl_ros.atomic_io import safe_torch_load
from effdl_ros.errors import ConfigError, DataError
from effdl_ros.tracking.meta_optimizer import LSTMOptimizer, MetaInitializer
from effdl_ros.tracking.roam import CONTEXT, RoamConfig, RoamNet, decode_deltas, filter_size, map_size, tracking_loss

#: the most elongated box the tracker accepts at init (width/height or height/width)
MAX_INIT_ASPECT = 20.0


@dataclass(frozen=True)
class TrackerSettings:
    """Every knob of the online loop; the budget maps onto the first four (see LEVELS)."""

    update_interval: int = 5            # frames between model updates (0 = never update)
    optimizer_steps: int = 2            # learned-optimiser steps per update
    search_scales: Tuple[float, ...] = (1.0,)   # window sizes tried per frame (x the base window)
    search_size: int = 161              # window side after resizing (pixels, 8k+1)
    init_steps: int = 0                 # learned-optimiser steps on the first frame after the initialiser's step
    buffer_size: int = 10               # samples kept for updates (the first frame's is always kept)
    scale_penalty: float = 0.05         # k in exp(-(dscale*dratio - 1) k)
    prior_sigma: float = 0.5            # motion prior sigma, x target size
    size_rate: float = 0.6              # size update rate = penalty x score x size_rate
    drift_ratio: float = 0.35           # confidence < drift_ratio -> drifting (position and model frozen)
    recover_ratio: float = 0.6          # while drifting, confidence >= recover_ratio -> re-acquired
    lost_after: int = 5                 # drifting this many frames in a row -> reported lost
    search_growth: float = 1.5          # while drifting, the window grows by this factor per frame ...
    max_search_zoom: float = 4.0        # ... up to this many times the normal window (same pixel count)

    def validated(self) -> "TrackerSettings":
        if self.search_size < 33 or (self.search_size - 1) % 8:
            raise ConfigError(f"search_size {self.search_size} must be 8k+1 and >= 33")
        if self.update_interval < 0 or self.optimizer_steps < 0 or not self.search_scales or self.init_steps < 0:
            raise ConfigError("update_interval, optimizer_steps and init_steps must be >= 0 and search_scales "
                              "non-empty")
        if self.search_growth < 1.0 or self.max_search_zoom < 1.0:
            raise ConfigError("search_growth and max_search_zoom must be >= 1")
        return self


#: Budget levels, richest first: (settings overrides). Their cost is modelled by macs_per_frame.
#: Below the default (LEVELS[1]) the window shrinks in 8-pixel steps (about 10 % of the cost each) at the
#: same update interval, so a budget finds a level within ~10 % below it and the update's cost arrives
#: at the same rhythm on every level (a longer interval makes a node's power per second lumpy: one
#: update's MACs are ~3 frames' worth); only the last two levels cut the updates.
LEVELS: List[Dict] = [
    dict(update_interval=5, optimizer_steps=2, search_scales=(0.96, 1.0, 1.04), search_size=161),
    *[dict(update_interval=5, optimizer_steps=2, search_scales=(1.0,), search_size=s)
      for s in (161, 153, 145, 137, 129, 121, 113, 105, 97)],
    dict(update_interval=5, optimizer_steps=1, search_scales=(1.0,), search_size=97),
    dict(update_interval=0, optimizer_steps=0, search_scales=(1.0,), search_size=97),
]

#: what TrackResult.state and the node's diagnostics say
TRACKING, SEARCHING, LOST = "tracking", "searching", "lost"


@dataclass
class TrackResult:
    box: np.ndarray          # x, y, w, h in image pixels (the last confident estimate while lost)
    score: float             # confidence 0..1: (peak - map mean) / the first frame's, clipped
    lost: bool               # drifting for lost_after frames in a row
    updated: bool = False    # a model update ran on this frame
    macs: int = 0            # multiply-accumulates executed on this frame (counted, not estimated)
    state: str = TRACKING    # TRACKING, SEARCHING (drifting, window widening) or LOST
    search_zoom: float = 1.0  # the window searched on this frame, x the normal window
    recovered: bool = False  # re-acquired on this frame after drifting


# ------------------------------------------------------------------------------- model loading

@dataclass
class RoamModel:
    net: RoamNet
    init: MetaInitializer
    optimizer: LSTMOptimizer
    info: dict = field(default_factory=dict)


def load_model(path) -> RoamModel:
    """A checkpoint written by `effdl-ros train roam` (torch.load(weights_only=True))."""
    path = Path(path)
    ck = safe_torch_load(path, what="ROAM model")
    try:
        cfg = RoamConfig(**ck["config"])
        net = RoamNet(cfg)
        sd = ck["state_dict"]
        net.load_state_dict({k[4:]: v for k, v in sd.items() if k.startswith("net.")}, strict=False)
        init = MetaInitializer({k[len("init.theta."):]: v for k, v in sd.items() if k.startswith("init.theta.")})
        init.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("init.")})
        opt = LSTMOptimizer()
        opt.load_state_dict({k[4:]: v for k, v in sd.items() if k.startswith("opt.")})
    except (KeyError, RuntimeError, TypeError, ValueError, EOFError) as err:
        raise DataError(f"{path} is not a ROAM checkpoint from `effdl-ros train roam` ({err})") from None
    for m in (net, init, opt):
        m.eval()
        m.requires_grad_(False)
    return RoamModel(net, init, opt, ck.get("train", {}))


def move_model(model: RoamModel, device) -> RoamModel:
    """The model's three networks on `device` (in place); the tracker then runs its frames there."""
    for m in (model.net, model.init, model.optimizer):
        m.to(device)
    return model


def random_model(seed: int = 0, search_size: int = 161, backbone: str = "hog_cn", channels: int = 32) -> RoamModel:
    """An untrained model (tests, or a baseline showing what training buys)."""
    from effdl_ros.tracking.roam import base_filter_for

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = RoamNet(RoamConfig(search_size=search_size, base_filter=base_filter_for(search_size), backbone=backbone,
                             channels=channels))
    init = MetaInitializer(net.init_params(g))
    opt = LSTMOptimizer()
    for m in (net, init, opt):
        m.eval()
        m.requires_grad_(False)
    return RoamModel(net, init, opt)


# ----------------------------------------------------------------------------- cost accounting

_BACKBONE_MACS: Dict[int, int] = {}


def backbone_macs(net: RoamNet, search_size: int) -> int:
    """MACs of one backbone pass at this window size (conv layers counted from their shapes;
    hand-crafted features: per-pixel arithmetic counted by hand, features.HandCraftedFeatures.macs)."""
    if getattr(net, "hand_crafted", False):
        from effdl_ros.tracking.features import HandCraftedFeatures

        return HandCraftedFeatures.macs(search_size)
    if search_size not in _BACKBONE_MACS:
        total = [0]

        def hook(mod, inp, out):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total[0] += int(out.numel() * k)

        hs = [m.register_forward_hook(hook) for m in net.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
        with torch.no_grad():
            net.backbone(torch.zeros(1, 3, search_size, search_size, device=net.mean.device))
        for h in hs:
            h.remove()
        _BACKBONE_MACS[search_size] = total[0]
    return _BACKBONE_MACS[search_size]


def head_macs(channels: int, search_size: int, n: int, fsize: Tuple[int, int], in_channels: int = 64) -> int:
    m = map_size(search_size)
    return n * m * m * (2 * channels * in_channels + 5 * channels * fsize[0] * fsize[1])


def lstm_macs(n_params: int, hidden: int = 20) -> int:
    return n_params * (4 * hidden * (5 + hidden) + 4 * hidden * (2 * hidden) + hidden)


# ------------------------------------------------------------------------------------ tracker

class RoamTracker:
    """Single-target tracker: init(image, box) then update(image) per frame. Images RGB uint8.

    Loss and recovery: confidence = (response peak - response mean) / the same on the first frame;
    a frame whose confidence falls below drift_ratio is *drifting*: position, size and model stay frozen,
    and from then on every frame searches a
    window search_growth times wider than the last (same pixel count, so a coarser view; up to
    max_search_zoom x the normal window) with a flat motion prior, until the confidence reaches
    recover_ratio: the window then moves to that peak and, if a normal-size window there confirms it
    (confidence >= recover_ratio again), the target is re-acquired; if not, the search goes on from
    where it was lost and that spot is skipped (window sizes cycle once at the largest). Re-acquired,
    normal tracking goes on. After lost_after drifting frames in a row the state is LOST (the node publishes it).
    """

    def __init__(self, model: RoamModel, settings: TrackerSettings = TrackerSettings()):
        self.model = model
        self.net = model.net
        self.settings = settings.validated()
        self.params = None
        self.device = model.net.mean.device   # where the model is: crops go there, boxes come back
        self.state_name = TRACKING
        self.drift, self.candidate, self.refuted = 0, None, []

    # -- geometry
    def _crop(self, image: np.ndarray, centre: np.ndarray, side: float, size: int) -> np.ndarray:
        """Window of `side` px centred at `centre`, resized to size x size (border replicated)."""
        return self._stretched_crop(image, centre, side, side, size)

    def _features(self, crops: List[np.ndarray]) -> torch.Tensor:
        from effdl_ros.device import to_device

        x = to_device(np.stack(crops), self.device).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            return self.net.features(x)

    def _fsize(self, anchor_wh, zoom: float = 1.0) -> torch.Tensor:
        """Resized-filter shape for a target of anchor_wh window pixels; a window `zoom` times wider
        than normal shows the target zoom times smaller, and so does the filter."""
        s = self.settings.search_size
        return torch.tensor([filter_size((anchor_wh[1], anchor_wh[0]), s / zoom, 2 * (map_size(s) // 2) - 1)],
                            dtype=torch.long)

    def _head_macs(self, n: int, fsize) -> int:
        return head_macs(self.net.config.channels, self.settings.search_size, n, tuple(fsize[0].tolist()),
                         self.net.in_channels)

    # -- API
    def init(self, image: np.ndarray, box) -> None:
        """Start on `box` (x, y, w, h): one meta-initialiser step on 9 augmented patches (then
        init_steps learned-optimiser steps on them)."""
        box = np.asarray(box, dtype=np.float64)
        if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
            raise ConfigError(f"tracker init box {box.tolist()} must be x, y, w, h with w, h > 0")
        if image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"tracker expects an RGB image [H, W, 3], got shape {image.shape}")
        if max(box[2] / box[3], box[3] / box[2]) > MAX_INIT_ASPECT:
            # a 1e6 x 1 px box made the filter ~1e6 wide and init ran for minutes (found by fuzzing)
            raise ConfigError(f"tracker init box {box.tolist()} is more than {MAX_INIT_ASPECT:g} times "
                              "wider than high (or the reverse)")
        height, width = image.shape[:2]
        if (box[0] >= width or box[1] >= height or box[0] + box[2] <= 0 or box[1] + box[3] <= 0
                or box[2] > width or box[3] > height):
            raise ConfigError(f"tracker init box {box.tolist()} must overlap the {width}x{height} image "
                              "and fit inside it")
        s = self.settings.search_size
        self.centre = box[:2] + box[2:] / 2
        self.size = box[2:].copy()
        self.image_hw = image.shape[:2]
        side = math.sqrt(self.size[0] * self.size[1]) * CONTEXT
        crops, boxes, anchors = [], [], []
        for z in (0.9, 1.0, 1.1):                      # 3 scales x 3 aspect ratios (ROAM)
            for a in (0.85, 1.0, 1 / 0.85):
                sx, sy = z * math.sqrt(a), z / math.sqrt(a)
                crops.append(self._stretched_crop(image, self.centre, side * sx, side * sy, s))
                wb = np.array([(s - 1) / 2, (s - 1) / 2, self.size[0] * s / (side * sx),
                               self.size[1] * s / (side * sy)])
                boxes.append(wb)
                anchors.append(wb[2:])
        feats = self._features(crops).unsqueeze(0)
        boxes_t = torch.tensor(np.stack(boxes), dtype=torch.float32, device=self.device).unsqueeze(0)
        anchors_t = torch.tensor(np.stack(anchors), dtype=torch.float32, device=self.device).unsqueeze(0)
        anchor = self.size * s / side
        self.fsize = self._fsize(anchor)
        init = self.model.init
        theta = {k: v.detach().clone() for k, v in init.initial(1).items()}
        grads, loss = self._grads(feats, theta, boxes_t, anchors_t)
        self.params = {k: theta[k] - init.log_lr[k].exp() * grads[k] for k in init.names}
        self.lr0 = {k: init.log_lr[k].exp() for k in init.names}
        self.state = self.model.optimizer.init_state(self.params, self.lr0)
        for _ in range(self.settings.init_steps):
            grads, loss = self._grads(feats, self.params, boxes_t, anchors_t)
            with torch.no_grad():
                self.params, self.state = self.model.optimizer.step(self.params, grads, loss, self.state, self.lr0)
        self.buffer_first = (feats[:, 4:5], boxes_t[:, 4:5], anchors_t[:, 4:5])
        self.buffer: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.frame = 0
        self.drift = 0
        self.candidate = None       # where a coarse-view peak moved the window, awaiting confirmation
        self.refuted: List[Tuple[float, float]] = []   # image points of coarse-view peaks not confirmed
        self.state_name = TRACKING
        with torch.no_grad():
            resp, _ = self.net.heads(feats[:, 4:5], self.params, self.fsize)
        self.first_peak = max(float(resp.max()), 1e-3)
        self.first_contrast = max(float(resp.max() - resp.mean()), 1e-3)
        n_params = sum(v.numel() for v in self.params.values())
        self.init_macs = int(9 * backbone_macs(self.net, s) + (3 + 3 * self.settings.init_steps) * self._head_macs(9, self.fsize)
                             + self._head_macs(1, self.fsize) + self.settings.init_steps * lstm_macs(n_params))

    def update_due(self, settings: "TrackerSettings" = None) -> bool:
        """Whether the next update() runs a model update (while tracking, every update_interval-th frame)."""
        st = settings or self.settings
        return self.params is not None and self.drift == 0 and st.update_interval > 0 and \
            st.optimizer_steps > 0 and (self.frame + 1) % st.update_interval == 0

    def next_frame_macs(self, settings: "TrackerSettings") -> int:
        """The MACs the next update() would execute under `settings`, a model update included when one is
        due (every update_interval-th frame while tracking): what a per-frame budget must pay for. A new
        window size empties the sample buffer, so an update right after a level change is cheaper."""
        s = settings.search_size
        n = len(settings.search_scales) if self.drift == 0 else 1
        side = math.sqrt(self.size[0] * self.size[1]) * CONTEXT
        anchor = self.size * s / side
        fs = tuple(filter_size((anchor[1], anchor[0]), s, 2 * (map_size(s) // 2) - 1))
        c, d = self.net.config.channels, self.net.in_channels
        macs = n * backbone_macs(self.net, s) + head_macs(c, s, n, fs, d)
        if self.update_due(settings):
            same = s == self.settings.search_size
            kept = (len(self.buffer) if same else 0) + 1
            samples = min(kept, settings.buffer_size - (1 if same and self.buffer_first is not None else 0))
            samples += 1 if same and self.buffer_first is not None else 0
            n_params = sum(v.numel() for v in self.params.values())
            macs += settings.optimizer_steps * (3 * head_macs(c, s, samples, fs, d) + lstm_macs(n_params))
        return int(macs)

    def last_box(self) -> np.ndarray:
        """The current estimate, x, y, w, h."""
        return np.array([self.centre[0] - self.size[0] / 2, self.centre[1] - self.size[1] / 2,
                         self.size[0], self.size[1]])

    def _stretched_crop(self, image, centre, side_x, side_y, size):
        import cv2

        kx, ky = side_x / size, side_y / size
        m = np.array([[kx, 0, centre[0] - (size - 1) / 2 * kx], [0, ky, centre[1] - (size - 1) / 2 * ky]])
        return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)

    def _grads(self, feats, params, boxes, anchors):
        leaf = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        with torch.enable_grad():
            loss = tracking_loss(self.net, feats, leaf, self.fsize, boxes, anchors,
                                 search_size=self.settings.search_size)
            grads = torch.autograd.grad(loss.sum(), list(leaf.values()))
        return {k: g.detach() for k, g in zip(leaf, grads)}, loss.detach()

    def set_settings(self, settings: TrackerSettings) -> None:
        """Apply new knobs between frames (a new window size empties the sample buffer)."""
        settings = settings.validated()
        if self.params is not None and settings.search_size != self.settings.search_size:
            self.buffer = []
            self.buffer_first = None        # features of another map size cannot be reused
        self.settings = settings

    def search_zoom(self) -> float:
        """How much wider than normal the next frame's window is (1 while tracking)."""
        st = self.settings
        if self.drift == 0 or self.candidate is not None:
            return 1.0
        # widen frame after frame; once at max_search_zoom, cycle through the sizes again (a nearer
        # target shows larger, hence clearer, in a smaller window)
        k = max(1, math.ceil(math.log(st.max_search_zoom) / math.log(st.search_growth) - 1e-9)) if st.search_growth > 1 else 1
        return float(min(st.search_growth ** (1 + (self.drift - 1) % k), st.max_search_zoom))

    def update(self, image: np.ndarray) -> TrackResult:
        if self.params is None:
            raise ConfigError("tracker.update() called before init()")
        st = self.settings
        s = st.search_size
        self.frame += 1
        zoom = self.search_zoom()
        searching = self.drift > 0
        base_side = math.sqrt(self.size[0] * self.size[1]) * CONTEXT * zoom
        scales = st.search_scales if not searching else (1.0,)
        sides = [base_side * z for z in scales]
        crops = [self._crop(image, self.centre, side, s) for side in sides]
        feats = self._features(crops)                                   # [n, D, H, W]
        n = len(sides)
        anchors = torch.tensor(np.array([self.size * s / side for side in sides]), dtype=torch.float32,
                               device=self.device)  # [n, 2]
        self.fsize = self._fsize((anchors[n // 2] * zoom).tolist(), zoom)
        with torch.no_grad():
            resp, deltas = self.net.heads(feats.unsqueeze(0), self.params, self.fsize)
        resp, deltas = resp[0], deltas[0]                                # [n, H, W], [n, 4, H, W]
        boxes = decode_deltas(deltas, anchors, s)                        # [n, 4, H, W] window px
        bw, bh = boxes[:, 2].clamp(min=1e-3), boxes[:, 3].clamp(min=1e-3)
        aw, ah = anchors[:, 0].view(n, 1, 1), anchors[:, 1].view(n, 1, 1)
        sz = torch.sqrt(bw * bh) / torch.sqrt(aw * ah)
        rr = (bw / bh) / (aw / ah)
        dscale = torch.maximum(sz, 1 / sz)
        dratio = torch.maximum(rr, 1 / rr)
        penalty = torch.exp(-(dscale * dratio - 1) * st.scale_penalty)
        m = map_size(s)
        grid = torch.arange(m, dtype=torch.float32, device=self.device) * 4 - (s - 1) / 2
        # cells whose centre lies inside the image (a window past the border shows replicated edges)
        h_img, w_img = self.image_hw
        ks = torch.tensor(sides, dtype=torch.float32, device=self.device).view(n, 1, 1) / s
        gx = self.centre[0] + grid.view(1, 1, m) * ks
        gy = self.centre[1] + grid.view(1, m, 1) * ks
        inside = ((gx >= 0) & (gx < w_img) & (gy >= 0) & (gy < h_img)).float()
        if searching:      # anywhere in the wider window: no motion prior; peaks already refuted are skipped
            for rx, ry in self.refuted:
                far = ((gx - rx) ** 2 / self.size[0] ** 2 + (gy - ry) ** 2 / self.size[1] ** 2) > 1.0
                inside = inside * far.float()
            score = resp.clamp(min=0) * inside
        else:
            sig_x, sig_y = st.prior_sigma * aw, st.prior_sigma * ah
            prior = torch.exp(-0.5 * (grid.view(1, 1, m) ** 2 / sig_x ** 2 + grid.view(1, m, 1) ** 2 / sig_y ** 2))
            score = resp.clamp(min=0) * penalty * prior * inside
        best = int(torch.argmax(score))
        si, rem = divmod(best, m * m)
        yi, xi = divmod(rem, m)
        peak = float(resp[si, yi, xi])
        # confidence: the peak's height above the mean over the image part of the window (the response
        # carries a learned offset of about 0.1 everywhere), relative to the first frame's
        valid = inside[si] if float(inside[si].sum()) > 0 else torch.ones_like(inside[si])
        contrast = peak - float((resp[si] * valid).sum() / valid.sum())
        confidence = contrast / self.first_contrast
        b = boxes[si, :, yi, xi].cpu().numpy().astype(np.float64)
        k = sides[si] / s
        cx = self.centre[0] + (b[0] - (s - 1) / 2) * k
        cy = self.centre[1] + (b[1] - (s - 1) / 2) * k
        confident = confidence >= (st.recover_ratio if searching else st.drift_ratio)
        recovered = False
        if searching and self.candidate is None and confident and zoom > 1.0:
            # a peak in the coarse wide view: jump there, and confirm it in a normal window next frame
            self.candidate = self.centre.copy()
            self.centre = np.array([cx, cy])
            confident = False
            self.drift += 1
        elif searching and self.candidate is not None and not confident:
            self.refuted.append((float(self.centre[0]), float(self.centre[1])))
            self.centre = self.candidate          # not confirmed: back to where the target was lost
            self.candidate = None
            self.drift += 1
        else:
            recovered = searching and confident
            self.candidate = None
            if confident:
                self.refuted = []
            self.drift = 0 if confident else self.drift + 1
        if recovered:      # jump to the peak; keep the size (the coarse view's box is not trusted)
            self.centre = np.array([cx, cy])
        elif confident:
            rate = float(np.clip(float(penalty[si, yi, xi]) * min(max(confidence, 0.0), 1.0) * st.size_rate, 0, 1))
            new_size = np.array([b[2] * k, b[3] * k])
            self.size = (1 - rate) * self.size + rate * new_size
            self.centre = np.array([cx, cy])
        # else: keep the old position and size, search wider next frame
        self.size = np.clip(self.size, 4.0, [max(w_img, 8), max(h_img, 8)])
        self.centre = np.clip(self.centre, 0, [w_img, h_img])
        macs = n * backbone_macs(self.net, s) + self._head_macs(n, self.fsize)
        updated = False
        if confident and not recovered and st.update_interval > 0:
            # sample: the chosen window, labelled with the estimated box (window pixels)
            est = torch.tensor([[[b[0], b[1], self.size[0] / k, self.size[1] / k]]], dtype=torch.float32,
                               device=self.device)
            self._push((feats[si:si + 1].unsqueeze(0), est, anchors[si:si + 1].unsqueeze(0)))
            if self.frame % st.update_interval == 0 and st.optimizer_steps > 0:
                macs += self._optimise()
                updated = True
        lost = self.drift >= st.lost_after
        self.state_name = LOST if lost else (SEARCHING if self.drift > 0 else TRACKING)
        return TrackResult(box=self.last_box(), score=float(min(max(confidence, 0.0), 1.0)), lost=lost,
                           updated=updated, macs=int(macs), state=self.state_name, search_zoom=zoom,
                           recovered=recovered)

    def _push(self, sample) -> None:
        self.buffer.append(sample)
        keep = self.settings.buffer_size - (1 if self.buffer_first is not None else 0)
        if len(self.buffer) > keep:
            self.buffer = self.buffer[-keep:]

    def _optimise(self) -> int:
        """optimizer_steps learned-optimiser steps on the buffer; returns the MACs spent (modelled x3 fwd)."""
        samples = ([self.buffer_first] if self.buffer_first is not None else []) + self.buffer
        feats = torch.cat([x[0] for x in samples], 1)
        boxes = torch.cat([x[1] for x in samples], 1)
        anchors = torch.cat([x[2] for x in samples], 1)
        self.fsize = self._fsize((self.size * self.settings.search_size
                                  / (math.sqrt(self.size[0] * self.size[1]) * CONTEXT)).tolist())
        macs = 0
        n_params = sum(v.numel() for v in self.params.values())
        for _ in range(self.settings.optimizer_steps):
            grads, loss = self._grads(feats, self.params, boxes, anchors)
            with torch.no_grad():
                self.params, self.state = self.model.optimizer.step(self.params, grads, loss, self.state,
                                                                    self.lr0)
            # forward + backward of the heads ~ 3 forwards, plus the LSTM over every coordinate
            macs += 3 * self._head_macs(feats.shape[1], self.fsize) + lstm_macs(n_params)
        return macs


def settings_for_budget(budget, base: TrackerSettings = TrackerSettings(), model: Optional[RoamModel] = None,
                        image_frames_per_s: float = 30.0) -> TrackerSettings:
    """Map a Budget (effdl_ros.energy.budget) onto the knobs: the richest LEVEL that fits.

    compute_fraction is compared with each level's modelled MACs per frame relative to LEVELS[1]
    (the default); `model` is the calibration (level_macs). No stale case: with no fresh budget the
    node's default fraction arrives as the budget (effdl_ros.nodekit.budget.BudgetClient).
    """
    b = budget.sanitized()
    costs = [level_macs(lv, model) for lv in LEVELS]
    full = costs[1]
    for lv, c in zip(LEVELS, costs):
        if c <= b.compute_fraction * full + 1:
            return replace(base, **lv)
    return replace(base, **LEVELS[-1])


@dataclass
class MacCredit:
    """Keeps the tracker's executed MACs on its budget frame by frame, not only level by level.

    Why: a level's cost is modelled with its model updates amortised, but the updates run only on
    confident frames and cost about three frames' worth each, so at a fixed level the power per budget
    period follows the video (measured on the looped demo clip: 0.64-1.06 W on one level, on the clip's
    8 s cycle), faster than the monitor's 1 s loop can correct. The credit is what the budget allowed
    minus what was executed; each frame may spend its share plus 1/horizon of the credit (a debt makes
    the next frames pick a cheaper level, a surplus a richer one), and at most `limit` frames' worth is
    kept either way, so an idle spell or a lost target does not bank an unbounded surplus. With
    settings_for_frame the level is chosen by what the frame will execute (allowance()), which holds
    every 1 s period within a few % of the budget on the demo clip (test_tracking_hysteresis).
    """

    horizon: int = 2          # frames over which a surplus or a debt is paid back (0 = off)
    limit: float = 3.0        # most frames' worth of credit kept, either sign (a step of the budget
                              # must not meet a surplus banked under the old one)
    credit: float = 0.0       # MACs

    def fraction(self, budget_fraction: float, full_macs: float) -> float:
        """The compute fraction the next frame's level is chosen for."""
        if self.horizon <= 0 or full_macs <= 0:
            return budget_fraction
        cap = self.limit * max(budget_fraction, 1e-6) * full_macs   # the current budget's cap, at once
        return max(0.0, budget_fraction + float(np.clip(self.credit, -cap, cap)) / self.horizon / full_macs)

    def allowance(self, budget_fraction: float, full_macs: float) -> float:
        """The MACs the next frame may execute: its share of the budget plus 1/horizon of the credit."""
        return self.fraction(budget_fraction, full_macs) * max(full_macs, 0.0)

    def spend(self, budget_fraction: float, full_macs: float, macs: float) -> None:
        """Book one frame: the budget's share of `full_macs` came in, `macs` were executed."""
        if self.horizon <= 0:
            return
        cap = self.limit * max(budget_fraction, 1e-6) * full_macs
        self.credit = float(np.clip(self.credit + budget_fraction * full_macs - macs, -cap, cap))

    def reset(self) -> None:
        self.credit = 0.0


def settings_for_frame(tracker: "RoamTracker", allowance_macs: float,
                       base: "TrackerSettings" = None, borrow_macs: float = 0.0) -> "TrackerSettings":
    """The richest LEVEL whose next frame (tracker.next_frame_macs) fits `allowance_macs`, else the
    cheapest: with MacCredit's allowance this keeps what every frame executes on the budget, so a
    model update is paid for on the frame it runs, not found out afterwards. On a frame whose model
    update is due, the level in force is kept if its frame fits allowance + `borrow_macs` (the next
    frames pay the debt back): otherwise a tight budget would drop every update for a cheaper window."""
    base = base or TrackerSettings()
    if borrow_macs > 0 and tracker.update_due() and level_index(tracker.settings) >= 0 and \
            tracker.next_frame_macs(tracker.settings) <= allowance_macs + borrow_macs + 1:
        return tracker.settings
    for lv in LEVELS[1:]:  # LEVELS[0] (three scales) costs 1.7x full compute: no budget pays for it
        candidate = replace(base, **lv)
        if tracker.next_frame_macs(candidate) <= allowance_macs + 1:
            return candidate
    return replace(base, **LEVELS[-1])


def settings_with_hysteresis(budget, current: TrackerSettings, base: TrackerSettings = TrackerSettings(),
                             model: Optional[RoamModel] = None, margin: float = 0.1) -> TrackerSettings:
    """settings_for_budget with hysteresis: leave the level `current` runs only when the budget's
    compute fraction is past the boundary by `margin` (relative) - a richer level must fit within
    (1 - margin) x the fraction, the current one must exceed (1 + margin) x it to be given up.

    Why: the level boundaries are coarse (ROAM's model updates on or off is a 40 % step in power), and
    the fraction the monitor sends jitters by a few % from period to period; without a margin the
    tracker flips between two levels around a boundary and the graph's total swings with it.
    """
    b = budget.sanitized()
    cur = level_index(current)
    if b.stale or cur < 0 or margin <= 0:
        return settings_for_budget(budget, base, model)
    costs = [level_macs(lv, model) for lv in LEVELS]
    full = costs[1]
    if costs[cur] > b.compute_fraction * (1.0 + margin) * full + 1:  # clearly too expensive: go down
        return settings_for_budget(budget, base, model)
    for i, c in enumerate(costs[:cur]):  # the richest level that fits with room to spare
        if c <= b.compute_fraction * (1.0 - margin) * full + 1:
            return replace(base, **LEVELS[i])
    return replace(base, **LEVELS[cur])


def level_index(settings: "TrackerSettings") -> int:
    """The index in LEVELS of the level these settings run (-1: none, e.g. a hand-set default)."""
    for i, lv in enumerate(LEVELS):
        if all(getattr(settings, k) == v for k, v in lv.items()):
            return i
    return -1


def level_macs(level: Dict, model: Optional[RoamModel] = None) -> float:
    """Modelled MACs per frame of a level (backbone + heads per scale, updates amortised)."""
    net = (model or _COST_MODEL()).net
    s = level["search_size"]
    n = len(level["search_scales"])
    f = s / CONTEXT / 4 * 1.5
    fs = (int(f) | 1, int(f) | 1)
    d = net.in_channels
    per_frame = n * backbone_macs(net, s) + head_macs(net.config.channels, s, n, fs, d)
    if level["update_interval"] > 0:
        n_params = sum(v.numel() for v in net.init_params().values())
        upd = level["optimizer_steps"] * (3 * head_macs(net.config.channels, s, 10, fs, d) + lstm_macs(n_params))
        per_frame += upd / level["update_interval"]
    return float(per_frame)


_COST = {}


def _COST_MODEL() -> RoamModel:
    if "m" not in _COST:
        _COST["m"] = random_model()
    return _COST["m"]
