"""CamVid patches: labelled by their centre pixel, deterministic, never Unlabelled."""
import numpy as np
import pytest

from effdl_ros.data import camvid
from effdl_ros.data.camvid_patches import load_patches, sample_patches


def test_sample_patches_labels_the_centre_pixel():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:50]
    image = np.stack([yy, xx, np.zeros_like(yy)], axis=2).astype(np.uint8)   # pixel = its coordinates
    mask = rng.integers(0, 12, (40, 50), dtype=np.uint8)
    crops, labels = sample_patches(image, mask, 30, np.random.default_rng(1), size=8)
    assert crops.shape == (30, 8, 8, 3) and (labels < camvid.IGNORE_INDEX).all()
    for crop, label in zip(crops, labels):
        cy, cx = int(crop[4, 4, 0]), int(crop[4, 4, 1])
        assert 4 <= cy <= 36 and 4 <= cx <= 46
        assert mask[cy, cx] == label


def test_real_patches_are_deterministic():
    root = camvid.default_root()
    if not root.is_dir():
        pytest.skip(f"CamVid data absent at {root}")
    a = load_patches("val", per_frame=8, max_frames=3)
    b = load_patches("val", per_frame=8, max_frames=3)
    assert a[0].shape == (24, 32, 32, 3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = load_patches("train", per_frame=8, max_frames=3)
    assert not np.array_equal(a[0], c[0])
    assert a[1].max() < camvid.IGNORE_INDEX
