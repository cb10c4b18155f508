"""Digit domains: names, disjoint shards, shifts (inversion, rotation, MNIST-M-like textures)."""

import numpy as np
import pytest

from effdl_ros.adaptation import domains
from effdl_ros.errors import ConfigError, DataError


def test_names_and_aliases():
    assert domains.canonical_name("mnistm") == "mnist5k-m"
    assert domains.parse_name("opencv-inv") == ("opencv", "inv")
    assert domains.parse_name("sklearn") == ("sklearn", None)
    for bad in ("svhn", "mnist5k-sepia", "opencv-"):
        with pytest.raises(ConfigError, match="unknown digit domain"):
            domains.parse_name(bad)


def test_same_base_domains_get_disjoint_digits():
    out = domains.build_domains(["sklearn", "sklearn-inv"])
    a, b = out["sklearn"], out["sklearn-inv"]
    total = sum(len(d.train_y) + len(d.test_y) for d in (a, b))
    assert total == 1797  # every sklearn digit used exactly once
    assert a.train_x.shape[1:] == (3, 28, 28) and a.train_x.dtype == np.float32
    assert 0.0 <= a.train_x.min() and a.train_x.max() <= 1.0
    # inversion: the frame border (no ink) is black in the plain domain, white in the inverted one
    assert a.train_x[:, :, 0, 0].max() == 0.0 and b.train_x[:, :, 0, 0].min() == 1.0
    assert set(np.unique(a.test_y)) == set(range(10))


def test_duplicate_domain_rejected():
    with pytest.raises(ConfigError, match="same domain twice"):
        domains.build_domains(["mnist", "mnist5k"])


def test_shifts_are_deterministic_and_change_images():
    grey = np.zeros((4, 28, 28), np.uint8)
    grey[:, 8:20, 12:16] = 255
    rot1 = domains.apply_shift(grey, "rot", seed=3)
    rot2 = domains.apply_shift(grey, "rot", seed=3)
    np.testing.assert_array_equal(rot1, rot2)
    assert not np.array_equal(rot1, domains.apply_shift(grey, None, seed=3))
    blur = domains.apply_shift(grey, "blur", seed=0)
    assert 0 < blur[0, 14, 11, 0] < 255  # the stroke edge is softened
    np.testing.assert_array_equal(domains.apply_shift(grey, "inv", seed=0), 255 - np.repeat(grey[..., None], 3, -1))


def test_mnist_m_like_shift_is_abs_texture_minus_digit(tmp_path):
    cv2 = pytest.importorskip("cv2")
    (tmp_path / "train").mkdir()
    tex = np.full((120, 160, 3), (100, 40, 200), np.uint8)  # RGB
    cv2.imwrite(str(tmp_path / "train" / "a.png"), cv2.cvtColor(tex, cv2.COLOR_RGB2BGR))
    textures = domains.load_textures(tmp_path)
    grey = np.zeros((2, 28, 28), np.uint8)
    grey[:, 10, 10] = 255
    out = domains.apply_shift(grey, "m", seed=0, textures=textures)
    assert out[0, 0, 0].tolist() == [100, 40, 200]  # no ink: the texture
    assert out[0, 10, 10].tolist() == [155, 215, 55]  # ink: |texture - 255|


def test_missing_camvid_textures_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "train")):
        domains.load_textures(tmp_path)


def test_mnistm_from_real_camvid_frames():
    from effdl_ros.data.camvid import default_root

    root = default_root()
    if not (root / "train").is_dir():
        pytest.skip(f"CamVid frames absent at {root}")
    out = domains.build_domains(["mnistm"], max_per_domain=100)
    d = out["mnist5k-m"]
    assert len(d.train_y) + len(d.test_y) == 100
    # colour backgrounds: the channels differ (plain MNIST is grey)
    assert np.abs(d.train_x[:, 0] - d.train_x[:, 1]).mean() > 0.01
