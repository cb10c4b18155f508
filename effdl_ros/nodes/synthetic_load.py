"""synthetic_load: a node whose per-item cost is a knob; it follows its energy budget.

Every 1/item_rate_hz seconds it runs one item at the compute fraction its budget allows (see
effdl_ros.energy.synthetic_load: it picks the fraction with its ASSUMED cost, books the TRUE one), and
reports through BudgetClient like every other node. It publishes nothing else: it exists to exercise
and show the monitor's loop (tests, demo). Parameters: item_rate_hz, cost_per_item_j,
assumed_cost_per_item_j (0 = exact), static_j_per_item, noise, min_fraction, macs_per_item,
default_power_w (used while no fresh budget; 0 = no limit), stale_after_s, report_period_s, seed.
"""
from __future__ import annotations

import math

from effdl_ros.energy.accountant import Accountant
from effdl_ros.energy.budget import Budget
from effdl_ros.energy.synthetic_load import SyntheticLoad, SyntheticLoadSettings
from effdl_ros.errors import ConfigError
from effdl_ros.nodekit.budget import BudgetClient, node_clock_seconds
from effdl_ros.nodekit.entry import run
from effdl_ros.nodekit.parameters import BUDGET_STALE_AFTER, Param, declare
from effdl_ros.runtime import Node, SetParametersResult

_SETTINGS = ("item_rate_hz", "cost_per_item_j", "assumed_cost_per_item_j", "static_j_per_item", "noise",
             "min_fraction", "macs_per_item")


PARAMETERS = (
    Param("item_rate_hz", 20.0, "items per second at full compute", range=(0.0, 1e6)),
    Param("cost_per_item_j", 0.05, "true energy per item at full compute", range=(0.0, 1e6)),
    Param("assumed_cost_per_item_j", 0.0, "energy per item the node believes (0 = the true one)",
          range=(0.0, 1e6)),
    Param("static_j_per_item", 0.0, "energy per item that no knob saves", range=(0.0, 1e6)),
    Param("noise", 0.02, "relative noise of the measured energy", range=(0.0, 10.0)),
    Param("min_fraction", 0.02, "cheapest compute fraction", range=(0.0, 1.0)),
    Param("macs_per_item", 0, "MACs per item at full compute (0 = unknown)", range=(0, 2**62)),
    Param("default_power_w", 0.0, "power budget while no fresh budget (0 = unlimited)", range=(0.0, 1e6)),
    BUDGET_STALE_AFTER,
    Param("report_period_s", 1.0, "seconds between energy reports", range=(1e-3, 1e6)),
    Param("seed", 0, "noise seed"),
)


class SyntheticLoadNode(Node):
    def __init__(self, node_name: str = "synthetic_load", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare(self, PARAMETERS)
        try:
            self.load = SyntheticLoad(self._settings({}), seed=self.get_parameter("seed").value)
        except ConfigError as err:
            raise ConfigError(f"{self.get_fully_qualified_name()}: {err}") from None
        default_w = self.get_parameter("default_power_w").value
        default = Budget(power_w=default_w if default_w > 0 else math.inf)
        self.acct = Accountant(self.get_fully_qualified_name(), clock=node_clock_seconds(self))
        self.budget = BudgetClient(self, self.acct, default=default,
                                   stale_after_sec=self.get_parameter("stale_after_s").value,
                                   report_period_sec=self.get_parameter("report_period_s").value)
        self.last_fraction = 1.0
        self._timer = self.create_timer(1.0 / self.load.settings.item_rate_hz, self._tick)
        self.add_on_set_parameters_callback(self._on_set)

    def _settings(self, changed) -> SyntheticLoadSettings:
        v = {n: changed.get(n, self.get_parameter(n).value) for n in _SETTINGS}
        v["assumed_cost_per_item_j"] = v["assumed_cost_per_item_j"] or None
        try:
            return SyntheticLoadSettings(**{k: (int(x) if k == "macs_per_item" else float(x)) if x is not None else None
                                            for k, x in v.items()}).validated()
        except (TypeError, ValueError) as err:
            raise ConfigError(f"invalid synthetic load parameter: {err}") from None

    def _on_set(self, params) -> SetParametersResult:
        changed = {p.name: p.value for p in params if p.name in _SETTINGS}
        if not changed:
            return SetParametersResult(successful=True)
        try:
            settings = self._settings(changed)
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        rate_changed = settings.item_rate_hz != self.load.settings.item_rate_hz
        self.load = SyntheticLoad(settings, seed=self.get_parameter("seed").value)
        if rate_changed:
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(1.0 / settings.item_rate_hz, self._tick)
        return SetParametersResult(successful=True)

    def _tick(self) -> None:
        fraction = self.load.fraction_for(self.budget.current())
        with self.acct.item() as item:
            item.energy_j, item.macs = self.load.run_item(fraction)
            item.compute_fraction = fraction
        self.last_fraction = fraction


NODE_CLASS = SyntheticLoadNode


def main(args=None) -> int:
    return run(SyntheticLoadNode, args)


if __name__ == "__main__":
    main()
