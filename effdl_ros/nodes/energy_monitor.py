"""energy_monitor: splits a total power budget across the nodes and closes the loop on their reports.

Subscribes `energy/reports` (EnergyReport, reliable keep-last 10). Publishes every 1/rate_hz seconds
ONE ResourceBudgetArray on `energy/budget` (reliable + transient-local, depth 1: a late joiner gets
every node's budget) and a DiagnosticArray on `/diagnostics` (per node: allocation, command,
consumption, stale flag; plus the meter and the total).

Parameters: total_power_w, mode (fixed | battery), target_runtime_s, battery_reserve, nodes /
priorities / min_shares (parallel arrays: ROS 2 parameters have no maps), default_priority, rate_hz,
stale_after_s, kp, ki, gain_filter, slew, deadband, hold_below, deactivate, meter (auto | none), power_supply_root. Invalid
values are refused with the reason (add_on_set_parameters_callback); the policy lives in
effdl_ros.energy.budget_policy.

Calibrated total (calibrate_s > 0): the monitor first lets the graph run unconstrained (budgets at
total_power_w, which should not bind) for calibrate_s seconds once every configured node reports work,
averages the graph's reported power over that window (the first 3 s left out), then sets the total to
budget_fraction x that figure. budget_fraction can be set at any time; schedule_after_s /
schedule_fractions (parallel arrays) set it at those times after calibration ends (a mission profile;
the budget-loop bench steps 0.6 -> 0.3 with it). The diagnostics carry calibrated_w and the fraction.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

from effdl_ros.energy.budget_policy import Allocation, BudgetPolicy, PolicyConfig, Report
from effdl_ros.errors import ConfigError
from effdl_ros.nodekit.budget import BUDGET_TOPIC, REPORT_TOPIC, node_clock_seconds
from effdl_ros.nodekit.entry import run
from effdl_ros.nodekit.parameters import Param, declare
from effdl_ros.runtime import Duration, Node, SetParametersResult
from effdl_ros.runtime.messages import (
    DiagnosticArray,
    DiagnosticStatus,
    EnergyReport,
    Header,
    KeyValue,
    ResourceBudget,
    ResourceBudgetArray,
)
from effdl_ros.runtime.qos import latched
from effdl_ros.runtime.safety import guarded

_POLICY_PARAMS = ("total_power_w", "mode", "target_runtime_s", "battery_reserve", "nodes", "priorities",
                  "min_shares", "default_priority", "stale_after_s", "kp", "ki", "gain_filter", "slew", "deadband",
                  "hold_below", "deactivate")
CALIBRATION_SKIP_S = 3.0  # the first seconds of calibration are left out of its average (warm-up)


PARAMETERS = (
    Param("total_power_w", 10.0, "the graph's total power budget in watts (mode fixed)", range=(0.0, 1e6)),
    Param("mode", "fixed", "fixed: total_power_w; battery: the battery's charge over target_runtime_s",
          choices=("fixed", "battery")),
    Param("target_runtime_s", 3600.0, "mode battery: how long the charge must last", range=(1e-3, 1e9)),
    Param("battery_reserve", 0.1, "mode battery: share of the charge kept back", range=(0.0, 1.0)),
    Param("nodes", [""], "the governed nodes: relative names (ddi) expand against the monitor's namespace, "
          "/absolute ones are kept; others get default_priority"),
    Param("priorities", [1.0], "one priority per entry of nodes"),
    Param("min_shares", [0.0], "one minimum share of the total per entry of nodes", range=(0.0, 1.0)),
    Param("default_priority", 1.0, "priority of a reporting node not listed in nodes", range=(0.0, 1e6)),
    Param("rate_hz", 1.0, "budget periods per second", range=(1e-3, 100.0)),
    Param("stale_after_s", 3.0, "a node silent this long gets no share", range=(1e-3, 1e6)),
    Param("kp", 0.1, "proportional gain of the per-node correction", range=(0.0, 100.0)),
    Param("ki", 0.8, "integral gain of the per-node correction", range=(0.0, 100.0)),
    Param("gain_filter", 0.3, "smoothing of each node's power-per-compute model (0 = frozen, 1 = newest only)", range=(0.0, 1.0)),
    Param("slew", 0.1, "largest relative change of a node's allocation per period"),
    Param("deadband", 0.0, "relative error left uncorrected"),
    Param("hold_below", 0.0, "hold a node on its level while the error is below this share"),
    Param("deactivate", False, "deactivate a node whose share cannot pay its cheapest level (by priority)"),
    Param("calibrate_s", 0.0, "measure the unconstrained graph this long, then set the total from it (0 = off)",
          range=(0.0, 1e6)),
    Param("budget_fraction", 0.6, "after calibration: total = this share of the measured power"),
    Param("schedule_after_s", [0.0], "after calibration: seconds at which the fraction changes"),
    Param("schedule_fractions", [0.0], "the fractions that apply from those times"),
    Param("meter", "auto", "auto: read a power meter where one is readable; anything else: modelled only"),
    Param("power_supply_root", "/sys/class/power_supply", "where the battery meter looks"),
    Param("lifecycle_services", True, "also (de)activate a node over its change_state service where it has one"),
)


class EnergyMonitorNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("energy_monitor", **kwargs)
        declare(self, PARAMETERS)
        self._now = node_clock_seconds(self)
        values = {n: self.get_parameter(n).value for n in _POLICY_PARAMS}
        rate = self.get_parameter("rate_hz").value
        try:
            values["nodes"] = expand_node_names(values["nodes"], self.get_namespace())
            config = self._config(values)
            _check_rate(rate)
        except ConfigError as err:
            raise ConfigError(f"{self.get_fully_qualified_name()}: {err}") from None
        self.policy = BudgetPolicy(config, start=self._now())
        self.last: Optional[Allocation] = None
        self.calibrate_s = float(self.get_parameter("calibrate_s").value)
        self.calibrated_w: Optional[float] = None    # the graph's unconstrained power (W, as reported)
        self.calibration_end: Optional[float] = None
        self._cal_start: Optional[float] = None
        self._cal_samples: List[float] = []
        self._schedule = self._read_schedule()
        self.meter, self.battery = self._open_meters()
        self._meter_reading = None
        self._pub = self.create_publisher(ResourceBudgetArray, BUDGET_TOPIC, latched(1))
        self._diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(EnergyReport, REPORT_TOPIC, guarded(self, self._on_report), 10)
        self._timer = self.create_timer(1.0 / rate, self._tick)
        from effdl_ros.nodekit.lifecycle import LifecycleSwitch

        self.lifecycle = LifecycleSwitch(self)
        self._active: Dict[str, bool] = {}
        self.add_on_set_parameters_callback(self._on_set)
        self._tick()  # the first budgets go out now, not one period later
        self.get_logger().info(f"total {config.total_power_w:.3g} W ({config.mode}), meter "
                               f"{self.meter.name if self.meter else 'none: reports are modelled'}")

    # ---------------------------------------------------------------------------------------- setup

    @staticmethod
    def _config(v: Dict[str, Any]) -> PolicyConfig:
        nodes = [n for n in v["nodes"] if n]
        prios, shares = list(v["priorities"]), list(v["min_shares"])
        if nodes:
            if len(prios) != len(nodes):
                raise ConfigError(f"parameter priorities has {len(prios)} values for {len(nodes)} nodes; "
                                  "give one per entry of nodes.")
            if shares in ([0.0], []):
                shares = [0.0] * len(nodes)
            if len(shares) != len(nodes):
                raise ConfigError(f"parameter min_shares has {len(shares)} values for {len(nodes)} nodes; "
                                  "give one per entry of nodes.")
        repeated = sorted({n for n in nodes if nodes.count(n) > 1})
        if repeated:
            raise ConfigError(f"parameter nodes lists {repeated} more than once.")
        bad = [n for n in nodes if not n.startswith("/")]
        if bad:
            raise ConfigError(f"parameter nodes: {bad} are not fully qualified names (start with '/').")
        return PolicyConfig(total_power_w=v["total_power_w"], mode=v["mode"], target_runtime_s=v["target_runtime_s"],
                            gain_filter=v["gain_filter"], slew=v["slew"], deadband=v["deadband"],
                            hold_below=v["hold_below"], deactivate=bool(v["deactivate"]),
                            battery_reserve=v["battery_reserve"], priorities=dict(zip(nodes, prios)),
                            min_shares={n: s for n, s in zip(nodes, shares) if s > 0} if nodes else {},
                            default_priority=v["default_priority"], stale_after_s=v["stale_after_s"],
                            kp=v["kp"], ki=v["ki"], only_configured=bool(nodes)).validated()

    def _open_meters(self):
        from effdl_ros.energy.meters import BatteryMeter, MeterError, detect_meter

        choice = self.get_parameter("meter").value
        meter = battery = None
        if choice == "auto":
            meter, why = detect_meter(power_supply_root=self.get_parameter("power_supply_root").value)
            if meter is None:
                self.get_logger().info("no readable meter (" + "; ".join(why.values()) + ")")
        if self.policy.config.mode == "battery":
            try:
                battery = BatteryMeter(self.get_parameter("power_supply_root").value)
                battery.state()
            except MeterError as err:
                self.get_logger().error(f"battery mode without a readable battery ({err}); "
                                        "the total stays at total_power_w")
                battery = None
        return meter, battery

    def _on_set(self, params) -> SetParametersResult:
        values = {n: self.get_parameter(n).value for n in _POLICY_PARAMS}
        rate = self.get_parameter("rate_hz").value
        for p in params:
            if p.name in values:
                values[p.name] = p.value
            elif p.name == "rate_hz":
                rate = p.value
            elif p.name == "budget_fraction" and (isinstance(p.value, bool) or not isinstance(p.value, (int, float))
                                                  or not 0 < p.value <= 10):
                return SetParametersResult(successful=False, reason="budget_fraction must lie in (0, 10]")
        try:
            values["nodes"] = expand_node_names(values["nodes"], self.get_namespace())
            config = self._config(values)
            _check_rate(rate)
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        except (TypeError, ValueError) as err:
            return SetParametersResult(successful=False, reason=f"invalid value: {err}")
        if self.calibrated_w is not None:  # the calibrated total stays in force over a new config
            config = PolicyConfig(**{**config.__dict__, "total_power_w": self.policy.config.total_power_w})
        self.policy.configure(config)
        for p in params:
            if p.name == "budget_fraction" and self.calibrated_w is not None:
                self._set_total(self.calibrated_w * float(p.value))
        if any(p.name == "rate_hz" for p in params):
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(1.0 / rate, self._tick)
        if any(p.name in _POLICY_PARAMS for p in params):
            self._tick()  # a new total or split goes out now, not at the next period
        return SetParametersResult(successful=True)

    def _read_schedule(self) -> List[Any]:
        times = [float(t) for t in self.get_parameter("schedule_after_s").value]
        fracs = [float(f) for f in self.get_parameter("schedule_fractions").value]
        if len(times) != len(fracs):
            raise ConfigError("parameters schedule_after_s and schedule_fractions need one value each per step.")
        return sorted((t, f) for t, f in zip(times, fracs) if f > 0)

    def _set_total(self, total: float) -> None:
        self.policy.configure(PolicyConfig(**{**self.policy.config.__dict__, "total_power_w": max(0.0, total)}))

    def _calibrate(self, now: float) -> None:
        """Calibration phase and the budget schedule after it (see the module docstring)."""
        if self.calibrate_s <= 0:
            return
        if self.calibrated_w is None:
            cfg = self.policy.config
            names = list(cfg.priorities) or list(self.policy.nodes)
            states = [self.policy.nodes.get(n) for n in names]
            working = all(st is not None and st.last_report is not None and st.last_report.items_processed > 0
                          and not self.policy.is_stale(st, now) for st in states) and bool(states)
            if self._cal_start is None:
                if working:
                    self._cal_start = now
                    self.get_logger().info(f"calibrating: the graph runs unconstrained for {self.calibrate_s:.0f} s")
                return
            if now - self._cal_start >= CALIBRATION_SKIP_S:
                self._cal_samples.append(sum(st.last_report.power_w for st in states if st is not None
                                             and st.last_report is not None))
            if now - self._cal_start >= self.calibrate_s and self._cal_samples:
                self.calibrated_w = sum(self._cal_samples) / len(self._cal_samples)
                self.calibration_end = now
                fraction = float(self.get_parameter("budget_fraction").value)
                self._set_total(self.calibrated_w * fraction)
                self.get_logger().info(f"calibrated: the graph draws {self.calibrated_w:.3g} W unconstrained; "
                                       f"total budget {100 * fraction:.0f} % = {self.calibrated_w * fraction:.3g} W")
            return
        while self._schedule and now - self.calibration_end >= self._schedule[0][0]:
            _, fraction = self._schedule.pop(0)
            from effdl_ros.runtime import Parameter

            self.set_parameters([Parameter("budget_fraction", value=fraction)])
            self.get_logger().info(f"budget schedule: total {100 * fraction:.0f} % = "
                                   f"{self.calibrated_w * fraction:.3g} W")

    # ---------------------------------------------------------------------------------------- loop

    def _on_report(self, msg: Any) -> None:
        # Windows are timed on the monitor's own clock (receive time): no clock sync between hosts needed.
        self.policy.observe(Report(node=msg.node, stamp=self._now(), power_w=float(msg.power_w),
                                   compute_fraction=float(msg.compute_fraction),
                                   items_processed=int(msg.items_processed),
                                   measured=msg.source == EnergyReport.SOURCE_MEASURED))

    def _tick(self) -> None:
        now = self._now()
        self._calibrate(now)
        if self.battery is not None:
            try:
                self.policy.set_battery(self.battery.state().energy_remaining_j, now)
            except Exception as err:  # noqa: BLE001 - a flaky battery file never stops the monitor
                self.get_logger().warning(f"battery unreadable: {err}", throttle_duration_sec=30.0)
        if self.meter is not None:
            try:
                self._meter_reading = self.meter.read()
            except Exception as err:  # noqa: BLE001
                self.get_logger().warning(f"meter {self.meter.name} unreadable: {err}", throttle_duration_sec=30.0)
                self._meter_reading = None
        alloc = self.policy.step(now)
        self.last = alloc
        self._switch_lifecycles(alloc)
        stamp = self.get_clock().now().to_msg()
        validity = Duration(seconds=self.policy.config.stale_after_s).to_msg()
        # A node deactivated on purpose gets a zero budget with a 0 ms deadline ("no time at all"): a
        # lifecycle model node deactivates itself on it and re-activates on the next real budget.
        budgets = [ResourceBudget(target_node=b.node, power_w=b.power_w, energy_per_item_j=b.energy_per_item_j,
                                  latency_deadline_ms=math.inf if b.active else 0.0,
                                  compute_fraction=b.compute_fraction, validity=validity) for b in alloc.budgets]
        self._pub.publish(ResourceBudgetArray(header=Header(stamp=stamp), total_power_w=alloc.total_power_w,
                                              budgets=budgets))
        self._diag.publish(DiagnosticArray(header=Header(stamp=stamp), status=self._diagnostics(alloc)))

    def _switch_lifecycles(self, alloc: Allocation) -> None:
        """A node the policy (de)activates changes lifecycle state over its change_state service too."""
        if not self.get_parameter("lifecycle_services").value:
            return
        for b in alloc.budgets:
            if self._active.get(b.node, True) != b.active:
                self.lifecycle.set_active(b.node, b.active)
                self.get_logger().info(f"{b.node}: {'re-activated' if b.active else 'deactivated'} by the policy "
                                       f"({self.lifecycle.outcome.get(b.node, 'budget signal')})")
            self._active[b.node] = b.active

    def _diagnostics(self, alloc: Allocation) -> List[Any]:
        meter = self.meter.name if self.meter is not None else "none (reports modelled)"
        values = [KeyValue(key="total_power_w", value=f"{alloc.total_power_w:.4g}"),
                  KeyValue(key="mode", value=self.policy.config.mode),
                  KeyValue(key="meter", value=meter),
                  KeyValue(key="reports_rejected", value=str(self.policy.rejected))]
        if self.calibrate_s > 0:
            values += [KeyValue(key="calibrated_w", value=f"{self.calibrated_w:.4g}" if self.calibrated_w else "pending"),
                       KeyValue(key="budget_fraction", value=f"{self.get_parameter('budget_fraction').value:.3g}")]
        if self._meter_reading is not None:
            values.append(KeyValue(key="measured_power_w", value=f"{self._meter_reading.power_w:.4g}"))
        out = [DiagnosticStatus(level=DiagnosticStatus.OK, name=f"{self.get_fully_qualified_name()}: total",
                                message="ok", hardware_id=meter, values=values)]
        for b in alloc.budgets:
            state = self.policy.nodes[b.node]
            rep = state.last_report
            source = "measured" if rep is not None and rep.measured else "modelled"
            over = math.isfinite(b.consumption_w) and b.consumption_w > 1.1 * b.allocation_w + 1e-9
            level = DiagnosticStatus.STALE if b.stale else (DiagnosticStatus.WARN if over else DiagnosticStatus.OK)
            message = "stale: no report" if b.stale else ("over budget" if over else "ok")
            if not b.active:
                level = DiagnosticStatus.WARN
                message = "deactivated: its share cannot pay its cheapest level (zero budget until it can)"
            if b.node in self.lifecycle.outcome:
                message += f"; lifecycle: {self.lifecycle.outcome[b.node]}"
            out.append(DiagnosticStatus(level=level, name=f"{self.get_fully_qualified_name()}: {b.node}",
                                        message=message, hardware_id=meter, values=[
                KeyValue(key="allocation_w", value=f"{b.allocation_w:.4g}"),
                KeyValue(key="budget_w", value=f"{b.power_w:.4g}"),
                KeyValue(key="consumption_w", value=f"{b.consumption_w:.4g}"),
                KeyValue(key="correction", value=f"{b.kappa:.4g}"),
                KeyValue(key="compute_fraction", value=f"{b.compute_fraction:.4g}"),
                KeyValue(key="gain_w", value=f"{state.gain_w:.4g}" if state.gain_w is not None else "nan"),
                KeyValue(key="stale", value=str(b.stale).lower()),
                KeyValue(key="active", value=str(b.active).lower()),
                KeyValue(key="source", value=source)]))
        return out


def expand_node_names(names: List[str], namespace: str) -> List[str]:
    """`ddi` -> `<namespace>/ddi` (ROS 2's rule for relative names), so that one monitor per robot
    (`--namespace /robot1`) governs only that robot's nodes; `/ddi` stays as it is."""
    prefix = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return [n if not n or n.startswith("/") else f"{prefix}/{n.strip('/')}" for n in names]


def _check_rate(rate: Any) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (0 < rate <= 100):
        raise ConfigError(f"parameter rate_hz={rate!r} is invalid: must lie in (0, 100] Hz.")


NODE_CLASS = EnergyMonitorNode


def main(args=None) -> int:
    return run(EnergyMonitorNode, args)


if __name__ == "__main__":
    main()
