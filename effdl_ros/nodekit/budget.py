"""BudgetClient: a node's side of the energy loop (any backend, rclpy included).

It subscribes `energy/budget` (ResourceBudgetArray, reliable + transient-local, so a late joiner gets
the current budgets), keeps the newest budget addressed to this node (target_node == the node's fully
qualified name), falls back to the configured default when that budget is stale (and says so, once per
change), and publishes the node's EnergyReport on `energy/reports` every report period from its
Accountant.

    self.acct = Accountant(self.get_fully_qualified_name(), clock=node_clock_seconds(self))
    self.budget = BudgetClient(self, self.acct, default=Budget(compute_fraction=1.0))
    ... knobs = mapping(self.budget.current())
    self.budget.set_knob("scale", 0.75)   # what the budget set, per item: in /diagnostics every period

The one stale/default rule of the package lives in `current()`: a fresh budget from the monitor is
followed; before the first one, and whenever it is stale, the node's configured default (its
`default_compute_fraction`) is returned as the budget, marked stale. Each capability then maps
whatever budget it gets with its `settings_for_budget(budget, calibration)` (ddi.budget_map,
segmentation.settings, tracking.tracker, training.knobs.knobs_from_budget); none of them has a stale
case of its own.

The knobs go out with each report as one DiagnosticStatus on `/diagnostics` named "<node>: knobs"
(per knob: the mean over the period's items and the last value), for `energy status`, the demo and the
budget-loop bench.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

from effdl_ros.energy.budget import Budget
from effdl_ros.runtime.messages import (
    DiagnosticArray,
    DiagnosticStatus,
    EnergyReport,
    Header,
    KeyValue,
    ResourceBudgetArray,
)
from effdl_ros.runtime.qos import latched
from effdl_ros.runtime.safety import guarded

BUDGET_TOPIC = "energy/budget"
REPORT_TOPIC = "energy/reports"


def node_clock_seconds(node: Any) -> Callable[[], float]:
    """The node's clock in seconds (simulated time in tests, ROS time under rclpy)."""
    clock = node.get_clock()
    return lambda: clock.now().nanoseconds * 1e-9


def _duration_sec(msg: Any) -> float:
    return float(msg.sec) + float(msg.nanosec) * 1e-9


class BudgetClient:
    """Keeps this node's budget and publishes its energy reports.

    :param node: the node (our runtime's or rclpy's).
    :param accountant: an effdl_ros.energy.accountant.Accountant for this node.
    :param default: the budget used before the first one arrives and whenever it is stale.
    :param stale_after_sec: a budget older than this (or than its own validity, if shorter) is stale.
    :param report_period_sec: EnergyReport period (s); 0 publishes none.
    """

    def __init__(self, node: Any, accountant: Any, *, default: Budget = Budget(),
                 stale_after_sec: float = 3.0, report_period_sec: float = 1.0) -> None:
        if not (stale_after_sec > 0 and math.isfinite(stale_after_sec)):
            from effdl_ros.errors import ConfigError

            raise ConfigError(f"stale_after_sec must be a finite number > 0, got {stale_after_sec!r}.")
        self._node = node
        self._acct = accountant
        self._name = node.get_fully_qualified_name()
        self._default = default.sanitized()
        self._stale_after = float(stale_after_sec)
        self._now = node_clock_seconds(node)
        self._budget: Optional[Budget] = None
        self._deadline = -math.inf
        self._was_stale: Optional[bool] = None
        self.received = 0
        self.reports_sent = 0
        self._sub = node.create_subscription(ResourceBudgetArray, BUDGET_TOPIC,
                                             guarded(node, self._on_budgets), latched(1))
        self._pub = node.create_publisher(EnergyReport, REPORT_TOPIC, 10)
        self._knobs: dict = {}      # name -> [sum, count, last] over the report period
        self._diag = None
        self._timer = node.create_timer(report_period_sec, self.publish_report) if report_period_sec > 0 else None

    # ---------------------------------------------------------------------------------------- budgets

    def _on_budgets(self, msg: Any) -> None:
        for b in msg.budgets:
            if b.target_node != self._name:
                continue  # addressed to another node
            validity = _duration_sec(b.validity)
            hold = min(self._stale_after, validity) if validity > 0 else self._stale_after
            self._budget = Budget(power_w=float(b.power_w), energy_per_item_j=float(b.energy_per_item_j),
                                  latency_deadline_ms=float(b.latency_deadline_ms),
                                  compute_fraction=float(b.compute_fraction), stale=False,
                                  source="monitor").sanitized()
            self._deadline = self._now() + hold
            self.received += 1

    def current(self) -> Budget:
        """The budget to follow now: the monitor's, or the default (stale=True) when none is fresh."""
        fresh = self._budget is not None and self._now() <= self._deadline
        if self._was_stale != (not fresh):
            log = self._node.get_logger()
            if fresh:
                log.info("following the energy monitor's budget")
            elif self._budget is None:
                log.info("no energy budget received yet: using the configured default")
            else:
                log.warning(f"energy budget stale (none for {self._stale_after:.1f} s): "
                            "falling back to the configured default")
            self._was_stale = not fresh
        if fresh:
            return self._budget
        return Budget(power_w=self._default.power_w, energy_per_item_j=self._default.energy_per_item_j,
                      latency_deadline_ms=self._default.latency_deadline_ms,
                      compute_fraction=self._default.compute_fraction, stale=True, source="default")

    # ---------------------------------------------------------------------------------------- reports

    def set_knob(self, name: str, value: float) -> None:
        """Record the value a knob took for one item (its period mean goes out with the next report)."""
        k = self._knobs.setdefault(name, [0.0, 0, value])
        k[0] += float(value)
        k[1] += 1
        k[2] = value

    def knobs(self) -> dict:
        """{knob: (mean over the current period, last value)} (NaN mean when no item yet)."""
        return {n: (k[0] / k[1] if k[1] else math.nan, k[2]) for n, k in self._knobs.items()}

    def _publish_knobs(self) -> None:
        if not self._knobs:
            return
        if self._diag is None:
            self._diag = self._node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        values = []
        for name, (mean, last) in self.knobs().items():
            values += [KeyValue(key=f"{name}_mean", value=f"{mean:.6g}"), KeyValue(key=name, value=f"{last:.6g}")]
        values.append(KeyValue(key="estimate", value=self._acct.estimate if hasattr(self._acct, "estimate") else ""))
        stamp = self._node.get_clock().now().to_msg()
        self._diag.publish(DiagnosticArray(header=Header(stamp=stamp), status=[DiagnosticStatus(
            level=DiagnosticStatus.OK, name=f"{self._name}: knobs", message="ok", hardware_id=self._name,
            values=values)]))
        for k in self._knobs.values():
            k[0], k[1] = 0.0, 0

    def publish_report(self) -> None:
        """Close the accountant's period and publish it as an EnergyReport (and the knobs' diagnostics)."""
        self._publish_knobs()
        snap = self._acct.report()
        source = EnergyReport.SOURCE_MEASURED if snap.source == "measured" else EnergyReport.SOURCE_MODELLED
        msg = EnergyReport(header=Header(stamp=self._node.get_clock().now().to_msg()), node=self._name,
                           energy_j=float(snap.energy_j), power_w=float(snap.power_w),
                           items_processed=int(snap.items_processed),
                           compute_fraction=float(snap.compute_fraction), latency_ms=float(snap.latency_ms),
                           source=source, meter=snap.meter)
        self._pub.publish(msg)
        self.reports_sent += 1

    def destroy(self) -> None:
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
        self._node.destroy_subscription(self._sub)
        self._node.destroy_publisher(self._pub)
