"""Digit domains for multi-source adaptation: real digits, real and synthetic shifts.

Digit-Five (MNIST, MNIST-M, SVHN, SynthDigits, USPS), which MDDA (Zhao et al., AAAI 2020,
arXiv 1911.11554) is measured on, cannot be downloaded here. We build domains from three real
handwritten-digit sets that ship with our dependencies or ../shared/data (effdl_ros.data.digits) and
shift them: a name is ``<base>[-<shift>]``:

- bases: ``mnist5k`` (28x28 MNIST), ``sklearn`` (8x8 UCI digits upscaled to 20x20: blurry, blocky),
  ``opencv`` (OpenCV's 20x20 sheet: other writers, thicker strokes); the last two are centred in a
  28x28 frame with a 4-pixel border, as MNIST frames its digits;
- shifts: ``m`` (MNIST-M-like: ``|texture - digit|`` per channel, the textures being random crops of
  REAL CamVid street frames from ../shared/data, as MNIST-M does with BSDS500 photos), ``inv``
  (inversion), ``blur`` (Gaussian, sigma 1.5 px), ``rot`` (rotation, uniform in +-45 degrees).
  ``mnistm`` is an alias of ``mnist5k-m``.

When several requested domains share a base, the base's images are split into disjoint stratified
shards first, so no real digit appears in two domains (a source must not contain the target's digits).
Every domain is then split 80/20 into train/test with a fixed seed. Images are float32 [N, 3, 28, 28]
in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from effdl_ros.errors import ConfigError, DataError

BASES = ("mnist5k", "sklearn", "opencv")
SHIFTS = ("m", "inv", "blur", "rot")
ALIASES = {"mnistm": "mnist5k-m", "mnist": "mnist5k"}
SIZE = 28


@dataclass
class Domain:
    """One digit domain: train and test splits (images float32 [N,3,28,28] in [0,1], labels int64)."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    def __repr__(self) -> str:
        return f"Domain({self.name}: {len(self.train_y)} train, {len(self.test_y)} test)"


def parse_name(name: str) -> Tuple[str, Optional[str]]:
    """``'opencv-inv'`` -> ``('opencv', 'inv')``; raises ConfigError naming the bad domain."""
    canonical = ALIASES.get(name.strip(), name.strip())
    base, dash, shift = canonical.partition("-")
    if base not in BASES or (dash and shift not in SHIFTS):
        raise ConfigError(
            f"unknown digit domain {name!r}: use <base>[-<shift>] with base one of {', '.join(BASES)} "
            f"and shift one of {', '.join(SHIFTS)} (or the alias mnistm)")
    return base, (shift or None)


def canonical_name(name: str) -> str:
    base, shift = parse_name(name)
    return base if shift is None else f"{base}-{shift}"


def _stratified_shards(labels: np.ndarray, n_shards: int, seed: int) -> List[np.ndarray]:
    """Disjoint index sets, each class spread evenly over the shards."""
    rng = np.random.default_rng(seed)
    shards: List[List[int]] = [[] for _ in range(n_shards)]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        for k, part in enumerate(np.array_split(idx, n_shards)):
            shards[k].extend(part.tolist())
    return [np.sort(np.asarray(s, dtype=np.int64)) for s in shards]


def load_textures(camvid_root: Path, n_frames: int = 60, seed: int = 0) -> List[np.ndarray]:
    """Real RGB street frames (CamVid train split), downscaled 2x, used as MNIST-M backgrounds."""
    import cv2

    folder = camvid_root / "train"
    files = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))
    if not files:
        raise DataError(f"no CamVid frames in {folder} for the MNIST-M-like textures "
                        f"(../shared/data/segmentation/camvid, or set EFFDL_ROS_DATA)")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(files), size=min(n_frames, len(files)), replace=False)
    frames = []
    for i in sorted(chosen):
        bgr = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"cannot decode CamVid frame {files[i]}")
        small = cv2.resize(bgr, (bgr.shape[1] // 2, bgr.shape[0] // 2), interpolation=cv2.INTER_AREA)
        frames.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
    return frames


def apply_shift(grey: np.ndarray, shift: Optional[str], seed: int,
                textures: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
    """Grey uint8 [N,28,28] -> RGB uint8 [N,28,28,3] under one shift (deterministic for a seed)."""
    import cv2

    rng = np.random.default_rng(seed)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if shift is None:
        return rgb
    if shift == "inv":
        return 255 - rgb
    if shift == "blur":
        return np.stack([cv2.GaussianBlur(im, (7, 7), 1.5) for im in rgb])
    if shift == "rot":
        out = np.empty_like(rgb)
        centre = (SIZE / 2 - 0.5, SIZE / 2 - 0.5)
        for k, im in enumerate(rgb):
            m = cv2.getRotationMatrix2D(centre, float(rng.uniform(-45, 45)), 1.0)
            out[k] = cv2.warpAffine(im, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out
    if shift == "m":
        if not textures:
            raise ConfigError("the MNIST-M-like shift needs texture frames (CamVid)")
        out = np.empty_like(rgb)
        for k, im in enumerate(rgb):
            tex = textures[int(rng.integers(len(textures)))]
            y = int(rng.integers(tex.shape[0] - SIZE))
            x = int(rng.integers(tex.shape[1] - SIZE))
            patch = tex[y:y + SIZE, x:x + SIZE].astype(np.int16)
            out[k] = np.abs(patch - im.astype(np.int16)).astype(np.uint8)
        return out
    raise ConfigError(f"unknown shift {shift!r}")


def _frame(images: np.ndarray, box: int = 20) -> np.ndarray:
    """Resize to box x box and centre in a 28x28 black frame, as MNIST frames its 20x20 digits."""
    from effdl_ros.data.digits import resize_all

    if images.shape[1] != box:
        images = resize_all(images, box)
    pad = (SIZE - box) // 2
    return np.pad(images, ((0, 0), (pad, SIZE - box - pad), (pad, SIZE - box - pad)))


def _load_base(base: str) -> Tuple[np.ndarray, np.ndarray]:
    """Grey uint8 [N,28,28]; sklearn (8x8) and opencv (20x20) are framed like MNIST (20 px box)."""
    from effdl_ros.data.digits import load_named

    if base == "mnist5k":
        return load_named(base, SIZE)
    images, labels = load_named(base, 8 if base == "sklearn" else 20)
    return _frame(images), labels


def build_domains(names: Sequence[str], *, seed: int = 0, test_fraction: float = 0.2,
                  max_per_domain: Optional[int] = None,
                  camvid_root: Optional[Path] = None) -> Dict[str, Domain]:
    """Build the named domains (canonical names as keys), with disjoint digits per shared base."""
    from effdl_ros.data.digits import split

    canon = [canonical_name(n) for n in names]
    if len(set(canon)) != len(canon):
        raise ConfigError(f"domain list {', '.join(names)} names the same domain twice")
    by_base: Dict[str, List[str]] = {}
    for name in canon:
        by_base.setdefault(parse_name(name)[0], []).append(name)
    textures = None
    if any(parse_name(n)[1] == "m" for n in canon):
        if camvid_root is None:
            from effdl_ros.data.camvid import default_root

            camvid_root = default_root()
        textures = load_textures(Path(camvid_root), seed=seed)
    out: Dict[str, Domain] = {}
    for base, members in by_base.items():
        images, labels = _load_base(base)
        for k, idx in enumerate(_stratified_shards(labels, len(members), seed)):
            name = members[k]
            if max_per_domain is not None and len(idx) > max_per_domain:
                keep = _stratified_shards(labels[idx], int(np.ceil(len(idx) / max_per_domain)), seed)[0]
                idx = idx[keep]
            shift = parse_name(name)[1]
            rgb = apply_shift(images[idx], shift, seed=seed + 7919 * (k + 1), textures=textures)
            x = rgb.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
            (trx, try_), (tex, tey) = split(x, labels[idx], test_fraction=test_fraction, seed=seed)
            out[name] = Domain(name, trx, try_, tex, tey)
    return {n: out[n] for n in canon}
