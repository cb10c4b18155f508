"""The trainer's knobs, and how a Budget maps onto them (plain code, unit-tested; no ROS).

One settings dataclass holds every knob the energy budget drives: SMD drop rate, SLU target fraction
of executed blocks, PSG on/off, training steps per second, pause. The mapping is deliberately simple
and monotone, so an operator can predict it:

- compute_fraction f (0..1) of the full training compute. E2-Train's saving multiplies: the expected
  executed share is (1 - smd_rate) * slu_target (gated part). We keep smd_rate = 0.5 (the paper's
  value) while f <= 0.5 and lower it toward 0 as f rises to 1; the SLU target is then f / (1 - smd_rate)
  clamped to [slu_min, 1]. f == 0 pauses training.
- PSG (modelled energy only on a CPU: see psg.py) switches on below ``psg_below`` when allowed.
- power_w bounds the step rate: steps/s = min(max_steps_per_second, power_w / joules_per_step), the
  joules per step calibrated by `joules_per_step` (modelled: a dense step's MACs x the cost profile).
- No stale case: with no fresh budget the node's default_compute_fraction arrives as the budget
  (effdl_ros.nodekit.budget.BudgetClient), so that fraction is what the knobs follow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from effdl_ros.energy.budget import Budget
from effdl_ros.errors import ConfigError
from effdl_ros.training.macs import MacCounter


@dataclass(frozen=True)
class TrainerKnobs:
    smd_rate: float = 0.5            # probability of dropping a mini-batch (no forward, no backward)
    slu_target: float = 0.5          # target fraction of gated blocks that execute
    psg: bool = False                # predictive sign gradients (modelled energy saving on CPU)
    steps_per_second: float = 1.0    # optimiser steps attempted per second (dropped ones included)
    paused: bool = False             # no training at all

    def validated(self) -> "TrainerKnobs":
        if not 0.0 <= self.smd_rate < 1.0:
            raise ConfigError(f"smd_rate must be in [0, 1), got {self.smd_rate}")
        if not 0.0 < self.slu_target <= 1.0:
            raise ConfigError(f"slu_target must be in (0, 1], got {self.slu_target}")
        if not self.steps_per_second >= 0.0 or math.isinf(self.steps_per_second):
            raise ConfigError(f"steps_per_second must be finite and >= 0, got {self.steps_per_second}")
        return self


def knobs_from_budget(budget: Budget, defaults: TrainerKnobs, *, joules_per_step: float = 0.0,
                      max_steps_per_second: float = 10.0, slu_min: float = 0.2,
                      psg_allowed: bool = True, psg_below: float = 0.3) -> TrainerKnobs:
    """Map a (sanitised) Budget onto the trainer's knobs; see the module docstring for the rule."""
    budget = budget.sanitized()
    f = budget.compute_fraction
    if f <= 0.0 or budget.power_w == 0.0:
        return replace(defaults, paused=True, steps_per_second=0.0)
    smd = 0.5 if f <= 0.5 else 0.5 * (1.0 - f) / 0.5
    slu = min(1.0, max(slu_min, f / (1.0 - smd)))
    rate = defaults.steps_per_second
    if math.isfinite(budget.power_w) and joules_per_step > 0.0:
        rate = min(max_steps_per_second, budget.power_w / joules_per_step)
    rate = min(rate, max_steps_per_second)
    return TrainerKnobs(smd_rate=smd, slu_target=slu, psg=bool(psg_allowed and f < psg_below),
                        steps_per_second=rate, paused=rate <= 0.0)


@dataclass(frozen=True)
class StepCalibration:
    """One dense training step of a model: its MACs (counted) and energy (modelled)."""

    dense_macs: int
    joules: float


def calibrate_step(model: torch.nn.Module, batch: torch.Tensor, profile) -> StepCalibration:
    """Count the forward's MACs on `batch` once, x3 for forward + backward, and price them with the
    cost profile (pJ/MAC / efficiency): the joules_per_step knobs_from_budget needs."""
    counter = MacCounter(model, training=True)
    was = model.training
    try:
        with torch.no_grad():  # count the forward only; the backward it implies is 2x
            model.eval()
            model(batch)
    finally:
        model.train(was)
        counter.remove()
    macs = 3 * counter.tally.forward
    return StepCalibration(dense_macs=macs, joules=macs * profile.pj_per_mac / profile.efficiency * 1e-12)
