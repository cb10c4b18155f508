"""The energy monitor's policy: split a total power budget across nodes and close the loop.

1. Total: a fixed power (W), or, in battery mode, the usable energy left divided by the run time left.
2. Allocation: every node first gets its minimum share of the total; the rest is split by priority
   among live nodes. A stale node (no report for stale_after_s, or none yet) is offered the share it would
   get if every known node were live, but that share is not taken from the live nodes: they split the
   whole rest. The live nodes' allocations add up to the total; a returning node can overrun it by its
   own share for about one budget period.
3. Closed loop: a node maps its budget onto knobs through its own cost model, which is never exact. A PI
   controller per node corrects a multiplicative factor kappa (command = kappa x allocation) from the
   measured consumption. It works on the log of the relative error, e = ln(allocation / consumption),
   and measures that error against the allocation and command IN FORCE while the report's consumption
   happened (time-averaged over the report window). Rebasing the integrator halfway onto the correction
   in force then (a Smith-predictor-style dead-time compensation, halved so that a node carrying work
   across periods cannot sustain an even/odd alternation) keeps the one-period report delay from being
   corrected twice, so a step of the total moves every command at once and causes no integral kick.
   Anti-windup: kappa is clamped, one report changes it by at most a factor of 2, and while the node
   cannot follow (full compute yet under budget, or under half its command spent) kappa is held <= 1.
4. A knob-level model per node: the filtered power per unit of compute fraction (gain_w, an
   exponential average of reported power / reported compute fraction over periods with items). The
   compute_fraction sent is command / gain_w, so a node whose knob follows compute_fraction (segmentation
   scale, tracker level, DDI exit) moves by what its measured cost per unit says, not by one noisy report.
5. Work conservation: a node cannot use more than its power at full compute, gain_w (and a node that ran
   at full compute yet spent less than it was allowed has shown its demand): its allocation is capped
   there + 10 % and the surplus goes by priority to the nodes that can use it. The caps come from the
   filtered model, so they do not toggle from period to period.
6. Steadiness on real nodes (coarse discrete knobs, noisy per-period figures): between steps of the total,
   an allocation moves by at most `slew` of itself per period; a step of the total moves every allocation
   at once. A relative error inside `deadband` adds no integral action, so a node that sits on one knob
   level inside the band is left there instead of being pushed across to the next level and back.
   With hold_below > 0, a node under its allocation by deadband..hold_below (a coarse knob's level just
   below) is held there and its unspent share capped off to nodes that can use it (a dithered knob takes
   it up); where nobody can, it may try the level above, and once both levels around the allocation
   have been seen it stays on the nearer one. A step of the total clears all of this.
7. Deactivation (deactivate=True): a node that was asked for less compute than it ran has shown its
   cheapest level's power (floor_w). When a live node's share cannot pay that, the lowest-priority such
   node is deactivated on purpose (zero budget, NodeBudget.active False, one per period) and its share
   goes to the others; the highest-priority inactive node is re-activated once its share would pay its
   cheapest level + reactivate_margin. (The nodes are not lifecycle nodes yet: a deactivated node runs
   its cheapest level on a zero budget; DDI skips its items.)

No ROS here; the energy_monitor node feeds reports in and publishes what step() returns.
"""
from __future__ import annotations

import bisect
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from effdl_ros.errors import ConfigError

_log = logging.getLogger("effdl_ros.energy.budget_policy")

MODES = ("fixed", "battery")
REJECT_LOG_EVERY_S = 5.0
UNBOUND_USE = 0.5  # a node spending under this share of its command is not limited by its budget
HEADROOM = 0.1  # a saturated node keeps this share above its demand, so it can show it wants more
_MAX_STEP = math.log(2.0)  # the most one report may change the correction (a factor of 2)
FORGET_AFTER_STALE = 10  # an unconfigured node silent for this many stale periods is dropped


@dataclass(frozen=True)
class PolicyConfig:
    """Everything the monitor's parameters set. Validate with validated()."""

    total_power_w: float = 10.0           # fixed mode: the total; battery mode: the cap (W)
    mode: str = "fixed"                   # fixed | battery
    target_runtime_s: float = 3600.0      # battery mode: run time to last from the monitor's start (s)
    battery_reserve: float = 0.1          # battery mode: share of the remaining energy kept back, 0..1
    priorities: Mapping[str, float] = field(default_factory=dict)   # node -> weight > 0
    min_shares: Mapping[str, float] = field(default_factory=dict)   # node -> share of total, 0..1
    default_priority: float = 1.0         # for nodes that report without being configured
    stale_after_s: float = 3.0            # a node with no report for this long is stale (s)
    kp: float = 0.1                       # PI gains on e = ln(allocation / consumption)
    ki: float = 0.8
    kappa_min: float = 0.1                # anti-windup clamp of the correction factor
    kappa_max: float = 10.0
    report_period_s: float = 1.0          # nodes' report period, for their first report's window (s)
    only_configured: bool = False         # ignore reports from nodes not in priorities / min_shares
    max_unconfigured: int = 32            # at most this many unconfigured nodes are taken in
    gain_filter: float = 0.3              # weight of a new period in each node's knob model, (0, 1]
    slew: float = 0.15                    # between steps of the total, an allocation moves <= this share
                                          # of itself per period (0: no limit)
    deadband: float = 0.0                 # |ln(allocation / consumption)| below this: no integral action
    hold_below: float = 0.0               # a node spending less than its allocation by deadband..this (log)
                                          # is held on its knob level and its unspent share passed on (0: off)
    deactivate: bool = False              # deactivate (lowest priority first) a node whose allocation cannot
                                          # pay its cheapest level; re-activate it when it can again
    reactivate_margin: float = 0.2        # re-activate once the allocation pays the cheapest level + this share

    def validated(self) -> "PolicyConfig":
        """Raise ConfigError with the parameter's name and the reason where a value is invalid."""
        def check(name: str, value, ok: bool, why: str) -> None:
            if not ok:
                raise ConfigError(f"parameter {name}={value!r} is invalid: {why}.")

        def finite(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        check("total_power_w", self.total_power_w, finite(self.total_power_w) and self.total_power_w >= 0,
              "must be a finite number of watts >= 0")
        check("mode", self.mode, self.mode in MODES, f"must be one of {list(MODES)}")
        check("target_runtime_s", self.target_runtime_s, finite(self.target_runtime_s) and self.target_runtime_s > 0,
              "must be > 0 s")
        check("battery_reserve", self.battery_reserve, finite(self.battery_reserve) and 0 <= self.battery_reserve < 1,
              "must lie in [0, 1)")
        for node, w in self.priorities.items():
            check(f"priorities[{node}]", w, finite(w) and w > 0, "a priority must be a number > 0")
        for node, s in self.min_shares.items():
            check(f"min_shares[{node}]", s, finite(s) and 0 <= s <= 1, "a minimum share must lie in [0, 1]")
        total_min = sum(self.min_shares.values())
        check("min_shares", dict(self.min_shares), total_min <= 1 + 1e-9,
              f"the minimum shares add up to {total_min:.3g} > 1")
        check("default_priority", self.default_priority, finite(self.default_priority) and self.default_priority > 0,
              "must be > 0")
        check("stale_after_s", self.stale_after_s, finite(self.stale_after_s) and self.stale_after_s > 0, "must be > 0 s")
        check("kp", self.kp, finite(self.kp) and 0 <= self.kp <= 2, "must lie in [0, 2]")
        check("ki", self.ki, finite(self.ki) and 0 < self.ki <= 1.5, "must lie in (0, 1.5]")
        check("kappa_min", self.kappa_min, finite(self.kappa_min) and 0 < self.kappa_min <= 1, "must lie in (0, 1]")
        check("kappa_max", self.kappa_max, finite(self.kappa_max) and self.kappa_max >= 1, "must be >= 1")
        check("gain_filter", self.gain_filter, finite(self.gain_filter) and 0 < self.gain_filter <= 1,
              "must lie in (0, 1]")
        check("slew", self.slew, finite(self.slew) and 0 <= self.slew, "must be >= 0 (0: no limit)")
        check("deadband", self.deadband, finite(self.deadband) and 0 <= self.deadband < 1, "must lie in [0, 1)")
        check("hold_below", self.hold_below, finite(self.hold_below) and 0 <= self.hold_below < 2,
              "must lie in [0, 2)")
        check("reactivate_margin", self.reactivate_margin,
              finite(self.reactivate_margin) and 0 <= self.reactivate_margin <= 2, "must lie in [0, 2]")
        check("report_period_s", self.report_period_s, finite(self.report_period_s) and self.report_period_s > 0,
              "must be > 0 s")
        return self


@dataclass(frozen=True)
class Report:
    """The part of an EnergyReport the policy uses."""

    node: str
    stamp: float            # when the node made it, on the policy's clock (s)
    power_w: float          # average over the node's last period (W)
    compute_fraction: float = 1.0
    items_processed: int = 0
    measured: bool = False


@dataclass(frozen=True)
class NodeBudget:
    """One node's budget and the loop's view of it (the ResourceBudget fields and diagnostics)."""

    node: str
    allocation_w: float     # the node's share of the total (W): what its consumption should match
    power_w: float          # the command sent: allocation x kappa (W), never negative
    compute_fraction: float  # a compute share that would meet the command, from the node's last report
    energy_per_item_j: float  # command / the node's item rate (inf when unknown)
    kappa: float
    consumption_w: float    # the last reported consumption (NaN before the first report)
    stale: bool
    active: bool = True     # False: deactivated on purpose (its budget could not pay its cheapest level)


@dataclass(frozen=True)
class Allocation:
    stamp: float
    total_power_w: float
    budgets: Tuple[NodeBudget, ...]

    def for_node(self, node: str) -> Optional[NodeBudget]:
        for b in self.budgets:
            if b.node == node:
                return b
        return None


class _History:
    """Piecewise-constant (allocation, command) since a time, for averages over a report window."""

    def __init__(self) -> None:
        self.t: List[float] = []
        self.alloc: List[float] = []
        self.cmd: List[float] = []

    def add(self, t: float, alloc: float, cmd: float) -> None:
        self.t.append(t)
        self.alloc.append(alloc)
        self.cmd.append(cmd)
        if len(self.t) > 64:
            del self.t[:32], self.alloc[:32], self.cmd[:32]

    def average(self, t0: float, t1: float) -> Optional[Tuple[float, float, float]]:
        """Time-averaged (allocation, command) over [t0, t1] and the least allocation in force then;
        None unless our budgets covered the whole window."""
        if not self.t or t0 < self.t[0] - 1e-6:
            return None  # part of the window ran before any budget of ours: it says nothing about the gain
        if t1 <= t0:
            i = max(0, bisect.bisect_right(self.t, t1) - 1)
            return self.alloc[i], self.cmd[i], self.alloc[i]
        i = max(0, bisect.bisect_right(self.t, t0) - 1)
        a_sum = c_sum = 0.0
        least = math.inf
        while i < len(self.t) and self.t[i] < t1:
            least = min(least, self.alloc[i])
            start = max(t0, self.t[i])
            end = min(t1, self.t[i + 1]) if i + 1 < len(self.t) else t1
            a_sum += self.alloc[i] * (end - start)
            c_sum += self.cmd[i] * (end - start)
            i += 1
        span = t1 - t0
        return a_sum / span, c_sum / span, least


@dataclass
class _NodeState:
    priority: float
    min_share: float
    configured: bool
    log_kappa: float = 0.0
    last_error: float = 0.0
    last_report: Optional[Report] = None
    item_rate_hz: float = math.nan
    demand_w: Optional[float] = None   # set while the node cannot use its share (full compute, under budget)
    history: _History = field(default_factory=_History)
    reports: int = 0
    gain_w: Optional[float] = None     # knob model: filtered power per unit compute fraction (W)
    alloc_prev: Optional[float] = None  # the allocation of the last step (W)
    held_w: Optional[float] = None     # held on a knob level below its allocation: what it spends there (W)
    low_w: Optional[float] = None      # what it spent on the last level under its allocation (W)
    high_w: Optional[float] = None     # ... and on the last level over it (W)
    hold_blocked: bool = False         # nobody could use its unspent share: it may take the level above
    floor_w: Optional[float] = None    # what it spends on its cheapest level (learned: asked for less, it
                                       # did not go lower) (W)
    frac_sent: Optional[float] = None  # the compute fraction of the last budget sent
    active: bool = True


class BudgetPolicy:
    """Allocation + per-node PI correction; see the module docstring."""

    def __init__(self, config: PolicyConfig, *, start: Optional[float] = None) -> None:
        """:param start: when the run began (s), for battery mode's run time left; default: the first step."""
        self.nodes: Dict[str, _NodeState] = {}
        self.rejected = 0
        self._last_reject_log = -1e18
        self._battery: Optional[Tuple[float, float]] = None  # (energy left J, when)
        self._start: Optional[float] = start
        self._zero_total = False
        self._battery_warned = False
        self._last_total: Optional[float] = None
        self.configure(config)

    def configure(self, config: PolicyConfig) -> None:
        """Apply a (validated) config; loop state of nodes that stay is kept."""
        self.config = config.validated()
        for name, state in list(self.nodes.items()):
            if state.configured and name not in config.priorities and name not in config.min_shares:
                state.configured = False
        for name in set(config.priorities) | set(config.min_shares):
            state = self.nodes.get(name)
            if state is None:
                state = self.nodes[name] = _NodeState(1.0, 0.0, True)
            state.configured = True
        for name, state in self.nodes.items():
            state.priority = float(config.priorities.get(name, config.default_priority))
            state.min_share = float(config.min_shares.get(name, 0.0))

    # ------------------------------------------------------------------------------------------ inputs

    def set_battery(self, energy_remaining_j: Optional[float], now: float) -> None:
        """Battery mode: the usable energy left, from the battery meter (None: unknown)."""
        if energy_remaining_j is None or not math.isfinite(energy_remaining_j) or energy_remaining_j < 0:
            if not self._battery_warned:
                _log.warning("battery energy %r is not usable; keeping the last total", energy_remaining_j)
                self._battery_warned = True
            return
        self._battery_warned = False
        self._battery = (float(energy_remaining_j), now)

    def observe(self, report: Report) -> bool:
        """Take one node's report; a malformed one is logged and dropped (False), never raises."""
        p, f = report.power_w, report.compute_fraction
        bad = None
        if not report.node:
            bad = "an empty node name"
        elif not isinstance(p, (int, float)) or not math.isfinite(p) or p < 0:
            bad = f"power_w={p!r} (must be finite and >= 0)"
        elif not math.isfinite(report.stamp):
            bad = f"stamp={report.stamp!r}"
        if bad is not None:
            self._reject(report.node, bad)
            return False
        if not (isinstance(f, (int, float)) and math.isfinite(f)):
            report = Report(report.node, report.stamp, p, 1.0, report.items_processed, report.measured)
        state = self.nodes.get(report.node)
        if state is None:
            # Anyone on the network can publish a report: a flood of invented node names must not
            # dilute the real nodes' shares (a fuzz of 1,000 fake nodes cut /ddi to 0.01 W).
            unconfigured = sum(1 for st in self.nodes.values() if not st.configured)
            if self.config.only_configured or unconfigured >= self.config.max_unconfigured:
                self._reject(report.node, "not a configured node" if self.config.only_configured
                             else f"already {unconfigured} unconfigured nodes")
                return False
            _log.info("node %s reports without being configured: priority %.3g, no minimum share",
                      report.node, self.config.default_priority)
            state = self.nodes[report.node] = _NodeState(self.config.default_priority, 0.0, False)
        prev = state.last_report
        if prev is not None and report.stamp <= prev.stamp:
            self._reject(report.node, f"stamp {report.stamp:.3f} not after the last one {prev.stamp:.3f}")
            return False
        window = (report.stamp - prev.stamp) if prev is not None else self.config.report_period_s
        if prev is not None and report.items_processed >= prev.items_processed and window > 0:
            state.item_rate_hz = (report.items_processed - prev.items_processed) / window
        worked = report.items_processed > (prev.items_processed if prev is not None else 0)
        if worked and state.active and state.frac_sent is not None and \
                state.frac_sent < 0.8 * report.compute_fraction and report.compute_fraction < 0.999:
            # asked for (much) less compute than it ran: it is on its cheapest level
            p = report.power_w
            state.floor_w = p if state.floor_w is None else 0.5 * (state.floor_w + p)
        if worked:
            self._learn_gain(state, report)
            self._correct(state, report, window)
        else:
            state.demand_w = None  # a period without items says nothing about what the node needs
        state.last_report = report
        state.reports += 1
        return True

    def _reject(self, node: str, why: str) -> None:
        """Count a dropped report; log at most one line per REJECT_LOG_EVERY_S (floods stay readable)."""
        self.rejected += 1
        now = time.monotonic()
        if now - self._last_reject_log >= REJECT_LOG_EVERY_S:
            _log.warning("energy report from %r dropped: %s (%d dropped so far)", node, why, self.rejected)
            self._last_reject_log = now

    # ------------------------------------------------------------------------------------------ loop

    def _learn_gain(self, state: _NodeState, report: Report) -> None:
        """Update the node's knob model: power per unit compute fraction, filtered over periods."""
        if report.compute_fraction < 0.01 or report.power_w <= 0:
            return  # nothing run, or nothing spent: no information on the cost of compute
        g = report.power_w / report.compute_fraction
        if state.gain_w is None:
            state.gain_w = g
        else:
            a = self.config.gain_filter
            state.gain_w = math.exp((1 - a) * math.log(state.gain_w) + a * math.log(g))  # geometric: robust

    def _correct(self, state: _NodeState, report: Report, window: float) -> None:
        """One PI step on e = ln(allocation / consumption) over the report's window."""
        state.demand_w = None
        avg = state.history.average(report.stamp - window, report.stamp)
        if avg is None:
            return
        alloc, cmd, least = avg
        if least <= 1e-9 or cmd <= 1e-9:
            return  # nothing was allowed during (part of) the window: no information on the node's gain
        cfg = self.config
        y = max(report.power_w, 1e-3 * alloc)
        e = math.log(alloc / y)
        # Anti-windup (conditional integration): a node at full compute that still spends less than it may
        # cannot follow a larger command, so the correction is not wound up.
        # So can a node whose budget does not bind: it spent under half of what it was allowed (a
        # dynamic network already at its deepest exit reports a compute fraction below 1).
        full = report.compute_fraction >= 0.999 or report.power_w < UNBOUND_USE * cmd
        saturated = full and e > 0
        state.demand_w = report.power_w if full and y < (1.0 - HEADROOM / 2) * alloc else None
        lo, hi = math.log(cfg.kappa_min), math.log(cfg.kappa_max)
        # Rebase onto the mean of the correction the consumption was made under (dead-time compensation)
        # and the current one. Rebasing onto the one in force alone splits the loop into two chains, even
        # and odd periods, that a node carrying work over from one period to the next (the tracker's MAC
        # credit) averages, so nothing corrects their difference: measured on the real graph, commands
        # alternating 0.78 / 0.95 W and the power with them, period after period. With the mean that mode
        # decays (root 0.59 for ki 0.4 with half the work carried over; 0.65 for a pure one-period delay).
        in_force = 0.5 * (math.log(cmd / alloc) + state.log_kappa)
        p = report.power_w
        held = cfg.hold_below > 0 and not saturated and not state.hold_blocked and \
            cfg.deadband <= e < cfg.hold_below and (state.held_w is not None or report.compute_fraction < 0.999)
        if held:  # a coarse knob's level just under the allocation: stay there, pass the rest on
            state.held_w = p if state.held_w is None else 0.5 * (state.held_w + p)
        elif e < -cfg.deadband or e >= cfg.hold_below:
            state.held_w = None
        # Between two levels that bracket the allocation (both seen since the last step of the total):
        # stay on the nearer one instead of crossing back and forth.
        stay = False
        if state.high_w is not None and state.high_w <= alloc:
            state.high_w = None  # the allocation moved past it: no longer a level above
        if state.low_w is not None and state.low_w >= alloc:
            state.low_w = None
        if cfg.hold_below > 0 and cfg.deadband <= abs(e) < cfg.hold_below:
            if e > 0 and state.high_w is not None:
                stay = abs(alloc - p) <= abs(alloc - state.high_w)
            elif e < 0 and state.low_w is not None:
                stay = abs(alloc - p) < abs(alloc - state.low_w)
            if e > 0:  # the nearest levels seen on either side
                state.low_w = p if state.low_w is None else max(state.low_w, p)
            else:
                state.high_w = p if state.high_w is None else min(state.high_w, p)
        if saturated:
            new = min(state.log_kappa, 0.0)  # asking for more than the allocation would not help
        elif held or stay or abs(e) < cfg.deadband:
            new = in_force                   # close enough for a coarse knob: hold the correction
        else:
            step = cfg.ki * e + cfg.kp * (e - state.last_error)
            new = in_force + min(_MAX_STEP, max(-_MAX_STEP, step))
        state.log_kappa = min(hi, max(lo, new))   # clamp: the integrator never winds beyond the limits
        state.last_error = e

    def total_power_w(self, now: float) -> float:
        cfg = self.config
        if cfg.mode == "fixed":
            return cfg.total_power_w
        if self._start is None:
            self._start = now
        if self._battery is None:
            return cfg.total_power_w  # no battery reading yet: the cap
        energy, _ = self._battery
        left_s = max(1.0, cfg.target_runtime_s - (now - self._start))
        return max(0.0, min(cfg.total_power_w, energy * (1.0 - cfg.battery_reserve) / left_s))

    def is_stale(self, state: _NodeState, now: float) -> bool:
        return state.last_report is None or now - state.last_report.stamp > self.config.stale_after_s

    def _water_fill(self, alloc: Dict[str, float], live: List[str], scale_total: float) -> None:
        """Work conservation: a live node that cannot use its share (it ran at full compute and spent
        less) is capped at its demand + HEADROOM; the surplus goes by priority to the others that can."""
        capped: Dict[str, float] = {}
        for _ in range(len(live)):
            surplus = 0.0
            newly = []
            for n in live:
                st = self.nodes[n]
                if n in capped:
                    continue
                demand = _demand(st)
                if demand is None:
                    continue
                cap = max(demand * (1.0 + HEADROOM), scale_total * st.min_share)
                if alloc[n] > cap:
                    surplus += alloc[n] - cap
                    alloc[n] = cap
                    capped[n] = cap
                    newly.append(n)
            takers = [n for n in live if n not in capped]
            weight = sum(self.nodes[n].priority for n in takers)
            if surplus > 0 and weight <= 0:  # nobody can use it: the last nodes capped keep it (a cut gains nothing)
                back = sum(self.nodes[n].priority for n in newly)
                for n in newly:
                    alloc[n] += surplus * self.nodes[n].priority / back
                    if self.nodes[n].held_w is not None:  # holding it down helps nobody: let it go up
                        self.nodes[n].held_w = None
                        self.nodes[n].hold_blocked = True
                return
            if surplus <= 0 or weight <= 0:
                return
            for n in takers:
                alloc[n] += surplus * self.nodes[n].priority / weight

    def step(self, now: float) -> Allocation:
        """Allocate the total across nodes and apply each node's correction: the budgets to publish."""
        total = self.total_power_w(now)
        if (total <= 0) != self._zero_total:  # log the change, not every period
            self._zero_total = total <= 0
            if self._zero_total:
                _log.warning("total power budget is 0 W: every node gets a zero budget (least compute)")
            else:
                _log.info("total power budget is %.3g W again", total)
        total = max(0.0, total)
        stepped = self._last_total is None or abs(total - self._last_total) > 1e-9 * max(1.0, total)
        self._last_total = total
        if stepped:
            for st in self.nodes.values():  # a new total: every node may find another level
                st.held_w, st.low_w, st.high_w, st.hold_blocked = None, None, None, False
        for name, st in list(self.nodes.items()):  # forget unconfigured nodes long gone
            if not st.configured and st.last_report is not None and \
                    now - st.last_report.stamp > FORGET_AFTER_STALE * self.config.stale_after_s:
                _log.info("node %s silent for %.0f s: forgotten", name, now - st.last_report.stamp)
                del self.nodes[name]
        all_names = sorted(self.nodes)
        stale = {n: self.is_stale(self.nodes[n], now) for n in all_names}
        if self.config.deactivate:
            self._activation(total, all_names, stale)
        names = [n for n in all_names if self.nodes[n].active]
        alloc, live, scale = self._split(total, names, stale)
        cfg = self.config
        budgets = []
        if cfg.slew > 0 and not stepped:
            rises = {}
            for n in live:
                prev = self.nodes[n].alloc_prev
                if prev is not None and prev > 0:
                    alloc[n] = min(prev * (1.0 + cfg.slew), max(prev * (1.0 - cfg.slew), alloc[n]))
                    if alloc[n] > prev:
                        rises[n] = alloc[n] - prev
            excess = sum(alloc[n] for n in live) - total
            if excess > 0 and total > 0:
                # never above the total: the nodes on their way up wait for those slewing down
                up = sum(rises.values())
                for n, r in rises.items():
                    alloc[n] -= min(r, excess * r / up)
                excess -= min(up, excess)
                if excess > 1e-12:  # a node joining (no previous allocation): everyone makes room
                    used = sum(alloc[n] for n in live)
                    for n in live:
                        alloc[n] *= total / used
        for n in names:
            st = self.nodes[n]
            st.alloc_prev = alloc[n] if not stale[n] else None
            kappa = math.exp(st.log_kappa)
            cmd = min(total, max(0.0, alloc[n] * kappa))  # never more than the whole budget
            st.history.add(now, alloc[n], cmd)
            rep = st.last_report
            frac = 1.0
            if st.gain_w is not None and not stale[n]:
                frac = min(1.0, max(0.0, cmd / st.gain_w))
            elif rep is not None and rep.power_w > 0 and not stale[n]:
                frac = min(1.0, max(0.0, rep.compute_fraction * cmd / rep.power_w))
            rate = st.item_rate_hz
            per_item = cmd / rate if rate > 0 and math.isfinite(rate) else math.inf
            st.frac_sent = frac if not stale[n] else None
            budgets.append(NodeBudget(n, alloc[n], cmd, frac, per_item, kappa,
                                      rep.power_w if rep is not None else math.nan, stale[n]))
        for n in all_names:
            st = self.nodes[n]
            if not st.active:  # deactivated on purpose: a zero budget, said so
                st.history.add(now, 0.0, 0.0)
                st.alloc_prev, st.frac_sent = None, None
                rep = st.last_report
                budgets.append(NodeBudget(n, 0.0, 0.0, 0.0, 0.0, math.exp(st.log_kappa),
                                          rep.power_w if rep is not None else math.nan, stale[n], active=False))
        budgets.sort(key=lambda b: b.node)
        return Allocation(now, total, tuple(budgets))

    def _split(self, total: float, names: List[str], stale: Dict[str, bool]):
        """Minimum shares, then the rest by priority, then work conservation: (alloc, live, scale)."""
        min_sum = sum(self.nodes[n].min_share for n in names)
        scale = 1.0 / min_sum if min_sum > 1 else 1.0
        alloc = {n: total * self.nodes[n].min_share * scale for n in names}
        rest = max(0.0, total - sum(alloc.values()))
        live = [n for n in names if not stale[n]]
        weight = sum(self.nodes[n].priority for n in live)
        weight_all = sum(self.nodes[n].priority for n in names)
        for n in names:
            # A stale node is offered its share as if every known node were live, so a late joiner starts
            # from a useful budget and a cold start of all nodes adds up to the total; the offer is not taken
            # from the live nodes, who share the whole rest.
            w = weight if not stale[n] else weight_all
            alloc[n] += rest * self.nodes[n].priority / w if w > 0 else 0.0
        self._water_fill(alloc, live, total * scale)
        return alloc, live, scale

    def _activation(self, total: float, names: List[str], stale: Dict[str, bool]) -> None:
        """Deactivate (lowest priority first, one per period) a live node whose share cannot pay its
        cheapest level; re-activate (highest priority first) one whose share would pay it + margin."""
        active = [n for n in names if self.nodes[n].active]
        alloc, _, _ = self._split(total, active, stale)
        short = [n for n in active if not stale[n] and self.nodes[n].floor_w is not None
                 and alloc[n] < self.nodes[n].floor_w * (1.0 - max(self.config.deadband, 0.05))]
        if short and len(active) > 1:
            n = min(short, key=lambda m: (self.nodes[m].priority, m))
            self.nodes[n].active = False
            _log.warning("node %s deactivated: its share %.3g W cannot pay its cheapest level (%.3g W)",
                         n, alloc[n], self.nodes[n].floor_w)
            return
        inactive = sorted((n for n in names if not self.nodes[n].active),
                          key=lambda m: (-self.nodes[m].priority, m))
        for n in inactive:
            trial, _, _ = self._split(total, active + [n], stale)
            floor = self.nodes[n].floor_w or 0.0
            if trial[n] >= floor * (1.0 + self.config.reactivate_margin):
                self.nodes[n].active = True
                _log.info("node %s re-activated: its share %.3g W pays its cheapest level (%.3g W)",
                          n, trial[n], floor)
                return


def _demand(st: _NodeState) -> Optional[float]:
    """What a node could spend at most (W): the least of its shown demand, what it spends on the level
    it is held on, and its modelled power at full compute."""
    known = [v for v in (st.demand_w, st.held_w, st.gain_w) if v is not None]
    return min(known) if known else None


def settling(times, values, *, t_step: float, target: float, before: float, period_s: float,
             band: float = 0.05) -> Dict[str, float]:
    """Settling figures of one node after a step of its budget from `before` to `target` at t_step.

    settle_periods: time (in budget periods) after which every sample stays within band x target;
    overshoot: the largest excursion beyond the target in the step's direction, as a share of target.
    """
    after = [(t, v) for t, v in zip(times, values) if t > t_step]
    if not after or target <= 0:
        return {"settle_periods": math.inf, "overshoot": math.inf}
    settle_t = t_step  # the first sample after the last one outside the band (conservative)
    for i, (t, v) in enumerate(after):
        if abs(v - target) > band * target:
            settle_t = after[i + 1][0] if i + 1 < len(after) else math.inf
    direction = 1.0 if target >= before else -1.0
    over = max(0.0, max(direction * (v - target) for _, v in after)) / target
    return {"settle_periods": (settle_t - t_step) / period_s, "overshoot": over}
