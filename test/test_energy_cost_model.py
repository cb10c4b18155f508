"""Cost model: profiles with sources, executed-work counting (skipped layers cost nothing), energy modes."""
import math

import pytest
import torch

from effdl_ros.energy.cost_model import (
    MODELLED,
    Work,
    count_macs,
    count_work,
    estimate,
    get_profile,
    load_profiles,
    ops_energy_j,
    walltime_energy_j,
)
from effdl_ros.errors import ConfigError


def test_shipped_profiles_cover_the_three_platforms_and_cite_sources():
    profiles = load_profiles()
    assert {"x86_cpu", "jetson_orin", "desktop_gpu", "horowitz_45nm"} <= set(profiles)
    for p in profiles.values():
        assert p.pj_per_mac > 0 and p.pj_per_byte > 0 and 0 < p.efficiency <= 1
    # Horowitz ISSCC 2014, 45 nm: FP32 mult 3.7 pJ + add 0.9 pJ
    assert profiles["horowitz_45nm"].pj_per_mac == pytest.approx(4.6)
    from effdl_ros.energy.cost_model import default_profiles_path
    text = default_profiles_path().read_text()
    assert "Horowitz" in text and "ISSCC 2014" in text


def test_bad_profile_names_file_and_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("ok:\n  pj_per_mac: 1\n  pj_per_byte: 1\nbad:\n  pj_per_mac: -3\n  pj_per_byte: 1\n")
    with pytest.raises(ConfigError, match=r"p\.yaml line 4.*pj_per_mac"):
        load_profiles(path)
    path.write_text("x: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_profiles(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_profiles(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown energy profile"):
        get_profile("no_such_board")


def test_count_macs_matches_the_analytic_count():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3)
    lin = torch.nn.Linear(8 * 6 * 6, 10)
    model = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.Flatten(), lin)
    x = torch.randn(2, 3, 8, 8)
    assert count_macs(model, x) == 2 * (3 * 8 * 9 * 6 * 6 + 8 * 36 * 10)


class Gated(torch.nn.Module):
    """A block a gate may skip: the skipped path must cost nothing."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(64, 64)
        self.b = torch.nn.Linear(64, 64)

    def forward(self, x, skip: bool):
        x = self.a(x)
        return x if skip else self.b(x)


def test_skipped_layer_costs_nothing():
    m, x = Gated(), torch.randn(4, 64)
    full, skipped = count_work(m, x, skip=False), count_work(m, x, skip=True)
    assert full.macs - skipped.macs == 4 * 64 * 64
    assert skipped.macs == 4 * 64 * 64
    assert full.bytes > skipped.bytes > 0


def test_views_move_no_bytes():
    x = torch.randn(16, 16)
    assert count_work(lambda t: t.view(-1).t() if t.dim() == 2 else t, x).bytes == 0
    assert count_work(lambda t: t + 1, x).bytes == 2 * 16 * 16 * 4


def test_energy_modes():
    p = get_profile("x86_cpu")
    w = Work(macs=10**9, bytes=10**6)
    e = ops_energy_j(w, p)
    assert e == pytest.approx((1e9 * p.pj_per_mac / p.efficiency + 1e6 * p.pj_per_byte) * 1e-12)
    assert ops_energy_j(Work(macs=2 * 10**9, bytes=2 * 10**6), p) == pytest.approx(2 * e)
    assert estimate(w, p).source == MODELLED
    assert walltime_energy_j(2.0, p) == pytest.approx(2.0 * p.tdp_w)
    assert walltime_energy_j(2.0, p, utilisation=0.0) == pytest.approx(2.0 * p.idle_w)
    assert walltime_energy_j(-1.0, p) == 0.0
    assert walltime_energy_j(1.0, p, utilisation=math.nan) == pytest.approx(p.idle_w)
    with pytest.raises(ConfigError, match="no tdp_w"):
        walltime_energy_j(1.0, get_profile("horowitz_45nm"))
