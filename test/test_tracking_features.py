"""Hand-crafted features (issue 16): orientation histograms find a ramp's gradient direction, colour
names find a patch's colour, the grey channel follows intensity, and the map has ROAM's cell layout."""
import math

import pytest
import torch

from effdl_ros.tracking.features import COLOUR_NAMES, ORIENT_BINS, HandCraftedFeatures
from effdl_ros.tracking.roam import map_size

HOG = slice(0, ORIENT_BINS)
CN = slice(ORIENT_BINS + 1, ORIENT_BINS + 1 + len(COLOUR_NAMES))


def _ramp(angle_rad: float, size: int = 41) -> torch.Tensor:
    """Grey ramp whose intensity grows along direction angle (image x right, y down), RGB 0..255."""
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    v = 60 + 3.0 * (xx * math.cos(angle_rad) + yy * math.sin(angle_rad))
    return v.clamp(0, 255).expand(1, 3, size, size).contiguous()


@pytest.mark.parametrize("size", [161, 129, 97, 33])
def test_map_shape_matches_roam_cells(size):
    f = HandCraftedFeatures()
    out = f(torch.rand(2, 3, size, size) * 255)
    assert out.shape == (2, HandCraftedFeatures.channels, map_size(size), map_size(size))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("degrees", [0, 40, 60, 100, 140])
def test_ramp_orientation_lands_in_its_bin(degrees):
    f = HandCraftedFeatures()
    hog = f(_ramp(math.radians(degrees)))[0, HOG, 5, 5]          # an interior cell
    expected = (degrees % 180) / (180 / ORIENT_BINS)              # bin coordinate of the gradient angle
    best = int(hog.argmax())
    d = abs(best - expected)
    assert min(d, ORIENT_BINS - d) <= 0.5 + 1e-6, (degrees, hog.tolist())
    # far bins (orthogonal orientation) get nothing
    ortho = int(round(expected + ORIENT_BINS / 2)) % ORIENT_BINS
    assert float(hog[ortho]) < 0.05 * float(hog.max())


def test_flat_image_has_no_gradient_and_grey_follows_intensity():
    f = HandCraftedFeatures()
    dark = f(torch.full((1, 3, 33, 33), 20.0))[0]
    light = f(torch.full((1, 3, 33, 33), 230.0))[0]
    assert float(dark[HOG].abs().max()) < 1e-3 and float(dark[ORIENT_BINS].max()) < 0.05
    assert float(dark[-1].mean()) < -0.3 and float(light[-1].mean()) > 0.3


@pytest.mark.parametrize("rgb,name", [((200, 30, 30), "red"), ((40, 160, 50), "green"), ((40, 60, 200), "blue"),
                                      ((245, 245, 245), "white"), ((15, 15, 15), "black"),
                                      ((240, 225, 40), "yellow")])
def test_colour_names_pick_the_patch_colour(rgb, name):
    f = HandCraftedFeatures()
    img = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, 33, 33).contiguous()
    cn = f(img)[0, CN, 4, 4]
    names = [n for n, _ in COLOUR_NAMES]
    assert names[int(cn.argmax())] == name
    assert float(cn.sum()) == pytest.approx(1.0, abs=1e-4)
    assert float(cn.max()) > 0.6


def test_cells_are_centred_on_every_fourth_pixel():
    """A red dot at window pixel (20, 12) lights cell (y=3, x=5): cell i is centred on pixel 4 i."""
    f = HandCraftedFeatures()
    img = torch.full((1, 3, 41, 41), 128.0)
    img[0, :, 11:14, 19:22] = torch.tensor([200.0, 30.0, 30.0]).view(3, 1, 1)
    red = f(img)[0, ORIENT_BINS + 1 + [n for n, _ in COLOUR_NAMES].index("red")]
    assert tuple(divmod(int(red.argmax()), red.shape[1])) == (3, 5)
