"""Kill -9 each node of a supervised graph in turn (dds backend, one process per node, as `effdl-ros
run` starts it) and measure: restart (respawn with back-off, effdl_ros.graph.launch.Supervisor),
whether the other nodes kept running and reporting, whether the energy monitor's diagnostics marked the
dead node stale and gave its share to the live ones, and when the restarted node reported again and
followed the monitor's budget (delivered to the late joiner by the transient-local energy/budget topic;
seen in the node's own log line "following the energy monitor's budget").

Runs on a private DDS domain so that parallel runs and other graphs on the host do not mix.
"""
from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from effdl_ros.graph.launch import Supervisor, load_pipeline

FOLLOWING = b"following the energy monitor's budget"


class LoggingSupervisor(Supervisor):
    """The runtime's Supervisor, with each start's output in its own log file (to read it back)."""

    def __init__(self, *args, log_dir: Path, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log_dir = Path(log_dir)
        self.log_files: Dict[str, List[Path]] = {}

    def start(self, spec) -> None:
        real_popen = subprocess.Popen
        path = self.log_dir / f"{spec.name}.{len(self.log_files.get(spec.name, []))}.log"
        self.log_files.setdefault(spec.name, []).append(path)
        handle = open(path, "wb")

        def popen(cmd, **kwargs):
            return real_popen(cmd, stdout=handle, stderr=subprocess.STDOUT, **kwargs)

        subprocess.Popen = popen
        try:
            super().start(spec)
        finally:
            subprocess.Popen = real_popen
            handle.close()


@dataclass
class Kill:
    node: str
    restarted: bool = False
    restart_s: float = math.nan     # kill -> new process started
    rejoin_s: float = math.nan      # kill -> first energy report of the new process
    budget_s: float = math.nan      # kill -> new process says it follows the monitor's budget
    stale_s: float = math.nan       # kill -> monitor's diagnostics mark it stale
    others_alive: bool = True       # no other process died, every other node kept reporting
    redistributed: Optional[bool] = None  # survivors' allocation rose while it was stale
    diagnostics: str = ""


@dataclass
class KillRounds:
    kills: List[Kill] = field(default_factory=list)

    @property
    def survived(self) -> int:
        return sum(1 for k in self.kills if k.restarted and k.others_alive)


def write_respawn_pipeline(path: Path) -> Path:
    """Monitor + two loads, all respawned; the loads' respawn delay (2.5 s) outlasts the stale timeout
    (2 s) so the monitor's redistribution of a dead node's share is visible before it rejoins."""
    import yaml

    doc = {"nodes": [{"executable": "energy_monitor", "name": "energy_monitor", "respawn": True, "respawn_delay": 0.5},
                     {"executable": "synthetic_load", "name": "load_a", "respawn": True, "respawn_delay": 2.5},
                     {"executable": "synthetic_load", "name": "load_b", "respawn": True, "respawn_delay": 2.5}],
           "parameters": {"/energy_monitor": {"ros__parameters": {
               "meter": "none", "total_power_w": 0.6, "nodes": ["/load_a", "/load_b"], "priorities": [1.0, 1.0],
               "rate_hz": 4.0, "stale_after_s": 2.0}},
               "/load_a": {"ros__parameters": {"item_rate_hz": 10.0, "report_period_s": 0.25, "stale_after_s": 2.0}},
               "/load_b": {"ros__parameters": {"item_rate_hz": 10.0, "report_period_s": 0.25, "stale_after_s": 2.0}}}}
    Path(path).write_text(yaml.safe_dump(doc, sort_keys=False))
    return Path(path)


def kill_rounds(config: os.PathLike, *, rounds: int = 1, only: Optional[List[str]] = None,
                timeout_s: float = 30.0, log: Callable[[str], None] = print) -> KillRounds:
    """Start the graph supervised, kill -9 each node (or those in `only`) `rounds` times in turn."""
    from effdl_ros.runtime import Node
    from effdl_ros.runtime.messages import DiagnosticArray, EnergyReport
    from effdl_ros.runtime.testing import InprocGraph

    pipeline = load_pipeline(config)
    domain = random.Random(os.getpid() ^ time.time_ns()).randint(100, 200)
    previous = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    result = KillRounds()
    with tempfile.TemporaryDirectory(prefix="effdl_respawn_") as tmp:
        sup = LoggingSupervisor(pipeline, backend="dds", log=log, log_dir=Path(tmp))
        graph = InprocGraph(backend="dds")
        try:
            watcher = graph.add(lambda **kw: Node("respawn_watcher", **kw))
            last_report: Dict[str, float] = {}
            diag: Dict[str, Dict[str, str]] = {}
            stale_seen: Dict[str, float] = {}

            def on_report(msg):
                last_report[msg.node] = time.monotonic()

            def on_diag(msg):
                for s in msg.status:
                    if ": /" in s.name:
                        node = "/" + s.name.split(": /", 1)[1]
                        diag[node] = {kv.key: kv.value for kv in s.values}
                        diag[node]["message"] = s.message
                        if s.message.startswith("stale"):
                            stale_seen.setdefault(node, time.monotonic())
                        else:
                            stale_seen.pop(node, None)

            watcher.create_subscription(EnergyReport, "energy/reports", on_report, 50)
            watcher.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
            sup.start_all()

            def spin(seconds: float) -> None:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    sup.poll()
                    graph.executor.spin_once(timeout_sec=0.05)

            reporters = [s.fully_qualified_name for s in pipeline.nodes if s.executable != "energy_monitor"]

            def all_reporting(window: float = 1.5) -> bool:
                now = time.monotonic()
                return all(now - last_report.get(n, -1e9) < window and n in diag and n not in stale_seen
                           for n in reporters)

            end = time.monotonic() + timeout_s
            while time.monotonic() < end and not all_reporting():
                spin(0.2)
            specs = [s for s in pipeline.nodes if only is None or s.name in only]
            for _ in range(rounds):
                for spec in specs:
                    fqn = spec.fully_qualified_name
                    kill = Kill(node=fqn)
                    end = time.monotonic() + timeout_s
                    while time.monotonic() < end and not all_reporting():
                        spin(0.2)
                    others = {s.name: sup.processes[s.name].pid for s in pipeline.nodes
                              if s.name != spec.name and s.name in sup.processes}
                    alloc_before = {n: float(diag.get(n, {}).get("allocation_w", "nan")) for n in reporters if n != fqn}
                    old = sup.processes[spec.name]
                    starts_before = len(sup.log_files.get(spec.name, []))
                    log(f"kill -9 {fqn} (pid {old.pid})")
                    stale_seen.pop(fqn, None)
                    t0 = time.monotonic()
                    os.kill(old.pid, signal.SIGKILL)
                    alloc_during: Dict[str, float] = {}
                    while time.monotonic() - t0 < timeout_s:
                        spin(0.1)
                        now = time.monotonic()
                        proc = sup.processes.get(spec.name)
                        if proc is not None and proc.pid != old.pid and not kill.restarted:
                            kill.restarted, kill.restart_s = True, now - t0
                        if fqn in stale_seen and math.isnan(kill.stale_s):
                            kill.stale_s = stale_seen[fqn] - t0
                        if fqn in stale_seen:  # the most each survivor was allocated while it was stale
                            for n in alloc_before:
                                a = float(diag.get(n, {}).get("allocation_w", "nan"))
                                alloc_during[n] = max(alloc_during.get(n, -math.inf), a)
                        if kill.restarted and math.isnan(kill.rejoin_s) and last_report.get(fqn, -1e9) > t0 + kill.restart_s:
                            kill.rejoin_s = now - t0
                        if kill.restarted and math.isnan(kill.budget_s):
                            logs = sup.log_files.get(spec.name, [])[starts_before:]
                            if any(p.exists() and FOLLOWING in p.read_bytes() for p in logs):
                                kill.budget_s = now - t0
                        for name, pid in others.items():
                            p = sup.processes.get(name)
                            if p is None or p.pid != pid:
                                kill.others_alive = False
                        done = kill.restarted and not math.isnan(kill.rejoin_s if spec.executable != "energy_monitor"
                                                                 else kill.restart_s)
                        if done and (not math.isnan(kill.budget_s) or spec.executable == "energy_monitor"):
                            break
                    if spec.executable == "energy_monitor":
                        kill.diagnostics = "(the monitor itself)"
                    else:
                        kill.diagnostics = (f"stale after {kill.stale_s:.1f} s" if not math.isnan(kill.stale_s)
                                            else "never marked stale")
                        if alloc_during:
                            kill.redistributed = all(alloc_during[n] > alloc_before[n] for n in alloc_during
                                                     if math.isfinite(alloc_before[n]))
                            kill.diagnostics += ("; its share went to the live nodes" if kill.redistributed
                                                 else "; share NOT redistributed")
                    now = time.monotonic()
                    silent = [n for n in reporters if n != fqn and now - last_report.get(n, -1e9) > 3.0]
                    if silent:
                        kill.others_alive = False
                    result.kills.append(kill)
                    log(f"  {kill}")
        finally:
            sup.stop()
            graph.close()
            if previous is None:
                os.environ.pop("ROS_DOMAIN_ID", None)
            else:
                os.environ["ROS_DOMAIN_ID"] = previous
    return result
