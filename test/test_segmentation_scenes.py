"""Rendered source domains: exact labels in CamVid's classes, distinct styles, determinism."""
import numpy as np
import pytest

from effdl_ros.errors import ConfigError
from effdl_ros.segmentation.scenes import STYLES, render_domain


def test_labels_are_camvid_classes_and_styles_differ():
    stats = {}
    for name in ("sunny", "dusk"):
        imgs, labs = render_domain(name, 4, seed=1, height=48, width=64)
        assert imgs.shape == (4, 48, 64, 3) and imgs.dtype == np.uint8
        assert labs.shape == (4, 48, 64) and labs.max() <= 10
        present = set(np.unique(labs).tolist())
        assert {0, 1, 3} <= present  # sky, building, road in every street
        stats[name] = imgs.reshape(-1, 3).mean(0)
    # dusk is darker than sunny: distinct domains, not two names for one
    assert stats["dusk"].mean() < stats["sunny"].mean() - 30
    assert len(STYLES) >= 2


def test_rendering_is_deterministic_in_the_seed():
    a = render_domain("sunny", 2, seed=5, height=24, width=32)
    b = render_domain("sunny", 2, seed=5, height=24, width=32)
    c = render_domain("sunny", 2, seed=6, height=24, width=32)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_unknown_style_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown scene style"):
        render_domain("foggy", 1)
