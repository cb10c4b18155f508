"""Soak: run the configured graph in one process with its source at rate_factor x its nominal rate,
and measure what a long unattended run needs: resident memory (RSS) after warm-up, per-node callback
time (p99), end-to-end output latency, messages dropped (by kind, and lost to keep-last image queues),
and the longest subscription queue seen (bounded by each QoS depth, or growing).

The source node itself drives the graph (rate_hz overridden), so frames come as they would on the robot;
a node that cannot keep up loses frames in its keep-last queue instead of queueing without bound.
Only the local backends expose queue lengths; RSS is this process (all nodes of the inproc graph).
"""
from __future__ import annotations

import array
import collections
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from effdl_ros.errors import ConfigError


def rss_bytes(pid: Optional[int] = None) -> int:
    """Resident set size from /proc (Linux); 0 where unavailable."""
    try:
        with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class NodeSoak:
    name: str
    callbacks: int = 0
    image_callbacks: int = 0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    drops: Dict[str, int] = field(default_factory=dict)
    frames_lost_in_queue: int = 0
    max_queue: int = 0
    queue_bound: Optional[int] = None
    deadline_ms: float = math.inf


@dataclass
class SoakReport:
    config: str
    duration_s: float
    rate_factor: float
    nominal_hz: float
    driven_hz: float
    frames_published: int = 0
    warmup_s: float = 0.0
    rss_after_warmup_mb: float = math.nan
    rss_end_mb: float = math.nan
    rss_growth_pct: float = math.nan
    rss_slope_mb_per_h: float = math.nan
    rss_samples: List[List[float]] = field(default_factory=list)
    nodes: List[NodeSoak] = field(default_factory=list)
    e2e_p99_ms: Dict[str, float] = field(default_factory=dict)
    errors: List[str] = field(default_factory=list)

    @property
    def queues_bounded(self) -> bool:
        return all(n.queue_bound is None or n.max_queue <= n.queue_bound for n in self.nodes)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["nodes"] = [dict(n.__dict__) for n in self.nodes]
        d["queues_bounded"] = self.queues_bounded
        return d


def run_soak(config: os.PathLike, *, rate_factor: float = 2.0, duration_s: float = 1800.0,
             warmup_s: Optional[float] = None, overrides: Optional[Dict[str, Dict[str, Any]]] = None,
             progress: Optional[Callable[[float, float], None]] = None) -> SoakReport:
    """Soak the pipeline file `config` in-process; see the module docstring."""
    from effdl_ros.graph.launch import create_nodes, load_pipeline
    from effdl_ros.nodes.observer import ObserverNode
    from effdl_ros.runtime.local.qos import HistoryPolicy
    from effdl_ros.runtime.messages import Image
    from effdl_ros.runtime.safety import drop_counts
    from effdl_ros.runtime.testing import InprocGraph

    if not (rate_factor > 0 and math.isfinite(rate_factor)):
        raise ConfigError(f"--rate-factor must be a finite number > 0, got {rate_factor}")
    if not duration_s > 0:
        raise ConfigError(f"--duration must be > 0 s, got {duration_s}")
    pipeline = load_pipeline(config)
    sources = [s for s in pipeline.nodes if s.executable == "source"]
    if not sources:
        raise ConfigError(f"pipeline file {config} has no source node to drive the graph")
    nominal = float(sources[0].parameters.get("rate_hz", 10.0))
    over = {k: dict(v) for k, v in (overrides or {}).items()}
    over.setdefault(sources[0].name, {})["rate_hz"] = nominal * rate_factor
    over[sources[0].name].setdefault("loop", True)
    warmup = min(duration_s / 2, max(5.0, 0.1 * duration_s)) if warmup_s is None else warmup_s
    report = SoakReport(config=str(config), duration_s=duration_s, rate_factor=rate_factor, nominal_hz=nominal,
                        driven_hz=nominal * rate_factor, warmup_s=warmup)
    # array('d'): 8 bytes a callback, so the harness itself adds little to the RSS it measures
    times: Dict[str, array.array] = collections.defaultdict(lambda: array.array("d"))
    image_calls: Dict[str, int] = collections.Counter()

    def on_callback(entity: Any, seconds: float) -> None:
        name = getattr(entity, "node_name", "?")
        times[name].append(seconds * 1e3)
        if getattr(entity, "msg_type", None) is Image and entity.topic.endswith("/image"):
            image_calls[name] += 1

    with InprocGraph(backend="inproc") as graph:
        nodes = create_nodes(pipeline, graph, overrides=over)
        observer = graph.add(ObserverNode)
        graph.executor.on_callback = on_callback
        source = nodes[sources[0].name]
        subs = [(n.get_fully_qualified_name(), s) for n in nodes.values() for s in n.subscriptions]
        max_queue: Dict[str, int] = collections.Counter()
        start = time.monotonic()
        end = start + duration_s
        next_sample = start
        rss_warm = None
        while time.monotonic() < end:
            graph.executor.spin_once(timeout_sec=0.05)
            for name, sub in subs:
                q = getattr(sub, "_queue", None)
                if q is not None and len(q) > max_queue[name]:
                    max_queue[name] = len(q)
            now = time.monotonic()
            if now >= next_sample:
                rss = rss_bytes() / 2**20
                report.rss_samples.append([round(now - start, 2), round(rss, 2)])
                if rss_warm is None and now - start >= warmup:
                    rss_warm = rss
                next_sample = now + 1.0
                if progress is not None:
                    progress(now - start, rss)
        report.frames_published = int(getattr(source, "published", 0))
        report.rss_end_mb = rss_bytes() / 2**20
        if rss_warm is not None:
            report.rss_after_warmup_mb = rss_warm
            report.rss_growth_pct = 100.0 * (report.rss_end_mb - rss_warm) / rss_warm
            after = np.array([s for s in report.rss_samples if s[0] >= warmup])
            if len(after) >= 3 and np.ptp(after[:, 0]) > 0:
                report.rss_slope_mb_per_h = float(np.polyfit(after[:, 0], after[:, 1], 1)[0] * 3600.0)
        budgets = observer.stats.get("energy/budget")
        deadlines = {}
        if budgets is not None and budgets.last is not None:
            deadlines = {b.target_node: float(b.latency_deadline_ms) for b in budgets.last.budgets}
        for name, node in nodes.items():
            fqn = node.get_fully_qualified_name()
            t = np.frombuffer(times[fqn], dtype=np.float64) if fqn in times else np.zeros(0)
            depths = [s.qos_profile.depth for n, s in subs if n == fqn
                      and s.qos_profile.history != HistoryPolicy.KEEP_ALL]
            row = NodeSoak(name=fqn, callbacks=len(t), image_callbacks=image_calls.get(fqn, 0),
                           drops=drop_counts(node), max_queue=max_queue.get(fqn, 0),
                           queue_bound=max(depths) if depths else None,
                           deadline_ms=deadlines.get(fqn, math.inf))
            if len(t):
                row.p50_ms, row.p99_ms, row.max_ms = (float(np.percentile(t, 50)), float(np.percentile(t, 99)),
                                                      float(t.max()))
            if any(s.msg_type is Image and s.topic.endswith("/image") for n, s in subs if n == fqn):
                row.frames_lost_in_queue = max(0, report.frames_published - row.image_callbacks)
            report.nodes.append(row)
        for topic, stats in observer.stats.items():
            if stats.count and stats.latencies_ms and topic not in ("image", "energy/budget",
                                                                     "energy/reports", "trainer/model_update"):
                report.e2e_p99_ms[topic] = float(np.percentile(np.array(stats.latencies_ms), 99))
    return report


def write_soak_pipeline(path: Path, workdir: Path, *, rate_hz: float = 10.0) -> Path:
    """A self-contained pipeline for tests and a fresh checkout: source (shipped sample frames),
    ddi and segmentation on tiny random-weight models, synthetic_load and the energy monitor."""
    import yaml

    from effdl_ros.graph.setups import node_setup

    ddi = node_setup("ddi", Path(workdir) / "ddi").parameters
    seg = node_setup("segmentation", Path(workdir) / "seg").parameters
    doc = {
        "nodes": [{"executable": e, "name": e} for e in
                  ("energy_monitor", "ddi", "segmentation", "synthetic_load", "source")],
        "parameters": {
            "/source": {"ros__parameters": {"input": "samples/vtest", "rate_hz": rate_hz, "loop": True,
                                            "resize_width": 160}},
            "/ddi": {"ros__parameters": ddi},
            "/segmentation": {"ros__parameters": dict(seg, publish_overlay=False)},
            "/energy_monitor": {"ros__parameters": {"meter": "none", "total_power_w": 20.0}},
            "/synthetic_load": {"ros__parameters": {"item_rate_hz": 10.0}},
        },
    }
    path = Path(path)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
