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


def test_bare_tree_crowns_are_labelled_tree_with_the_background_showing_through():
    """A leafless crown is one Tree region (as CamVid labels it) whose pixels mix branches and sky."""
    from dataclasses import replace

    from effdl_ros.segmentation.scenes import TREE, render_scene

    bare = replace(STYLES["sunny"], tree_prob=1.0, bare_tree_prob=1.0, n_cars=(0, 0), n_people=(0, 0))
    leafy = replace(bare, bare_tree_prob=0.0)
    spread = {}
    for name, st in (("bare", bare), ("leafy", leafy)):
        img, lab = render_scene(st, np.random.default_rng(3), 96, 128)
        tree = lab == TREE
        assert tree.mean() > 0.01, name
        spread[name] = img[tree].astype(np.float32).std(0).mean()
    # branches over sky: far more colour variety inside a bare crown than inside flat foliage
    assert spread["bare"] > 1.5 * spread["leafy"]
