"""Fuzz one node's every subscription with lying messages (effdl_ros.graph.mutators).

inproc: the node and a fuzzer node share one executor; each message is published and every callback
it triggers runs before the next one, so every message reaches the node. An exception that escapes the
executor is a crash (in its own process it would have killed the node).
dds: the node runs in its own process (as `effdl-ros run` starts it) on a private DDS domain; this
process publishes over Cyclone DDS, watches the process (exit = crash) and reads the node's drop
counts from /diagnostics (effdl_ros.runtime.safety). Images are best effort, keep last 5: messages the
node's queue overwrote were never seen by it, so dds rows report sent vs counted.
After fuzzing, a valid probe image must still produce output (where the node takes images), the node's
model must be the one it started with (every update was bad) and no untrusted pickle may have run.
"""
from __future__ import annotations

import collections
import logging
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from effdl_ros.errors import EffdlError
from effdl_ros.graph.mutators import Mutator, make_bad_files
from effdl_ros.graph.setups import node_setup


@dataclass
class TopicResult:
    topic: str
    typename: str
    sent: int = 0
    crashes: int = 0
    drops: Dict[str, int] = field(default_factory=dict)
    kinds: int = 0
    seconds: float = 0.0
    crash_errors: List[str] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())


@dataclass
class FuzzReport:
    node: str
    backend: str
    started: bool = True
    error: str = ""
    topics: List[TopicResult] = field(default_factory=list)
    probe: str = "not run"
    model_kept: Optional[bool] = None
    pickle_executed: bool = False
    log_lines: int = 0
    diagnostics_seen: bool = False
    exit_code: Optional[int] = None

    @property
    def crashes(self) -> int:
        return sum(t.crashes for t in self.topics)

    @property
    def ok(self) -> bool:
        return (self.started and self.crashes == 0 and not self.pickle_executed
                and self.model_kept is not False and not self.probe.startswith("FAILED"))

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["topics"] = [dict(t.__dict__, dropped=t.dropped) for t in self.topics]
        d["crashes"], d["ok"] = self.crashes, self.ok
        return d


class _LineCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record) -> None:
        self.count += 1


def _probe_image():
    from effdl_ros.runtime.images import cv2_to_imgmsg
    from effdl_ros.runtime.messages import Header

    img = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return cv2_to_imgmsg(img, "rgb8", header=Header(frame_id="probe"))


def _sane_budget(fqn: str):
    """A full budget for the node: the probe runs under normal conditions, not the last lie."""
    from effdl_ros.runtime.messages import Duration, ResourceBudget, ResourceBudgetArray

    return ResourceBudgetArray(total_power_w=math.inf, budgets=[ResourceBudget(
        target_node=fqn, power_w=math.inf, energy_per_item_j=math.inf, latency_deadline_ms=math.inf,
        compute_fraction=1.0, validity=Duration(sec=30, nanosec=0))])


def _sane_detection():
    """A valid box in the middle of the probe image: a tracker probes from a sane init, not the last lie."""
    from effdl_ros.runtime.messages import BoundingBox2D, Detection2D, Point2D, Pose2D

    return Detection2D(bbox=BoundingBox2D(center=Pose2D(position=Point2D(x=32.0, y=24.0)), size_x=16.0, size_y=16.0))


def _subscriptions(node) -> List[Any]:
    """The node's subscriptions, one per topic, image topics first: lying images then reach every node
    in its start state (a tracker not yet initialised), so a 10,000-message run stays minutes long."""
    from effdl_ros.runtime.messages import Image

    seen, out = set(), []
    for sub in list(node.subscriptions):
        if sub.topic not in seen:
            seen.add(sub.topic)
            out.append(sub)
    return sorted(out, key=lambda s: s.msg_type is not Image)


def fuzz_inproc(executable: str, *, count: int, seed: int = 0, workdir: Optional[Path] = None,
                pipeline_parameters: Optional[Dict[str, Any]] = None,
                progress: Optional[Callable[[str, int], None]] = None) -> FuzzReport:
    """Fuzz `executable` in this process; `count` lying messages per subscribed topic."""
    from effdl_ros.nodes import node_class
    from effdl_ros.runtime import Node, Parameter
    from effdl_ros.runtime.messages import DiagnosticArray, type_name
    from effdl_ros.runtime.safety import DIAGNOSTICS_NAME_SUFFIX, drop_counts, publish_drop_diagnostics
    from effdl_ros.runtime.testing import InprocGraph

    report = FuzzReport(node=executable, backend="inproc")
    tmp = tempfile.TemporaryDirectory(prefix="effdl_fuzz_") if workdir is None else None
    work = Path(tmp.name if tmp else workdir)
    setup = node_setup(executable, work, pipeline_parameters=pipeline_parameters)
    bad = make_bad_files(setup.model_dir or work / "models", work / "scratch", setup.model_file)
    counter = _LineCounter()
    logs = [logging.getLogger("effdl_ros.nodes"), logging.getLogger("effdl_ros")]
    graph = InprocGraph(backend="inproc")
    try:
        try:
            node = graph.add(node_class(executable),
                             parameter_overrides=[Parameter(k, value=v) for k, v in setup.parameters.items()])
        except EffdlError as err:
            report.started, report.error = False, str(err)
            return report
        fqn = node.get_fully_qualified_name()
        mutator = Mutator(np.random.default_rng(seed), target=fqn, bad_files=bad)
        fuzzer = graph.add(lambda **kw: Node("fuzzer", **kw))
        diagnostics: List[Any] = []
        fuzzer.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 100)
        outputs: Dict[str, int] = collections.Counter()
        for pub in list(node.publishers):
            if pub.topic != "/diagnostics":
                fuzzer.create_subscription(pub.msg_type, pub.topic,
                                           lambda _m, t=pub.topic: outputs.update([t]), pub.qos_profile)
        model_before = getattr(node, "model_path", None)
        graph.spin_until_idle()
        for log in logs:
            log.addHandler(counter)
        for sub in _subscriptions(node):
            typename = type_name(sub.msg_type)
            result = TopicResult(topic=sub.topic, typename=typename, kinds=len(mutator.kinds(typename)))
            pub = fuzzer.create_publisher(sub.msg_type, sub.topic, sub.qos_profile)
            before = drop_counts(node)
            start = time.perf_counter()
            for i in range(count):
                _kind, msg = mutator.make(typename, i)
                pub.publish(msg)
                result.sent += 1
                try:
                    graph.spin_until_idle()
                except Exception as err:  # noqa: BLE001 - what we are looking for
                    result.crashes += 1
                    if len(result.crash_errors) < 5:
                        result.crash_errors.append(f"{_kind}: {type(err).__name__}: {err}"[:300])
                if progress is not None and (i + 1) % 1000 == 0:
                    progress(sub.topic, i + 1)
            result.seconds = time.perf_counter() - start
            after = drop_counts(node)
            result.drops = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
            report.topics.append(result)
            fuzzer.destroy_publisher(pub)
        for log in logs:
            log.removeHandler(counter)
        report.log_lines = counter.count
        publish_drop_diagnostics(node, force=True)
        graph.spin_until_idle()
        report.diagnostics_seen = any(s.name == fqn + DIAGNOSTICS_NAME_SUFFIX
                                      for d in diagnostics for s in d.status)
        report.probe = _probe_inproc(graph, fuzzer, node, outputs)
        if model_before is not None:
            report.model_kept = getattr(node, "model_path", None) == model_before
        report.pickle_executed = bad.marker.exists()
        return report
    finally:
        for log in logs:
            log.removeHandler(counter)
        graph.close()
        if tmp is not None:
            tmp.cleanup()


def _probe_inproc(graph, fuzzer, node, outputs) -> str:
    from effdl_ros.runtime.messages import Image

    image_subs = [s for s in _subscriptions(node) if s.msg_type is Image]
    if not image_subs:
        return "no image input"
    expect = [p.topic for p in node.publishers if p.topic not in ("/diagnostics", "/energy/reports")]
    from effdl_ros.runtime.messages import Detection2D

    for sub in _subscriptions(node):
        if sub.topic.endswith("/energy/budget"):
            fuzzer.create_publisher(sub.msg_type, sub.topic, sub.qos_profile).publish(
                _sane_budget(node.get_fully_qualified_name()))
        elif sub.msg_type is Detection2D:
            fuzzer.create_publisher(sub.msg_type, sub.topic, sub.qos_profile).publish(_sane_detection())
        graph.spin_until_idle()
    before = dict(outputs)
    pub = fuzzer.create_publisher(Image, image_subs[0].topic, image_subs[0].qos_profile)
    pub.publish(_probe_image())
    graph.spin_until(lambda: any(outputs[t] > before.get(t, 0) for t in expect), timeout_sec=2.0)
    new = sorted(t for t in outputs if outputs[t] > before.get(t, 0) and t in expect)
    if new:
        return "ok: valid image answered on " + ", ".join(new)
    if not expect or all(t.startswith("/trainer") for t in expect):
        return "ok: still running (no per-image output)"
    return "FAILED: no output for a valid image after fuzzing"


# ---------------------------------------------------------------------------------------------- dds

def fuzz_dds(executable: str, *, count: int, seed: int = 0, workdir: Optional[Path] = None,
             pipeline_parameters: Optional[Dict[str, Any]] = None, pace_sec: float = 0.001,
             progress: Optional[Callable[[str, int], None]] = None) -> FuzzReport:
    """Fuzz `executable` running in its own process over Cyclone DDS, on a private domain."""
    import yaml

    from effdl_ros.nodes import executables, node_class
    from effdl_ros.runtime import Node, Parameter
    from effdl_ros.runtime.messages import DiagnosticArray, Image, type_name
    from effdl_ros.runtime.safety import DIAGNOSTICS_NAME_SUFFIX
    from effdl_ros.runtime.testing import InprocGraph

    report = FuzzReport(node=executable, backend="dds")
    tmp = tempfile.TemporaryDirectory(prefix="effdl_fuzz_") if workdir is None else None
    work = Path(tmp.name if tmp else workdir)
    setup = node_setup(executable, work, pipeline_parameters=pipeline_parameters)
    bad = make_bad_files(setup.model_dir or work / "models", work / "scratch", setup.model_file)
    # which topics and types: build the node once in an in-process graph (cheap, tiny models)
    with InprocGraph(backend="inproc") as probe_graph:
        try:
            local = probe_graph.add(node_class(executable),
                                    parameter_overrides=[Parameter(k, value=v) for k, v in setup.parameters.items()])
        except EffdlError as err:
            report.started, report.error = False, str(err)
            return report
        fqn = local.get_fully_qualified_name()
        subs = [(s.topic, s.msg_type, s.qos_profile) for s in _subscriptions(local)]
        outs = [(p.topic, p.msg_type, p.qos_profile) for p in local.publishers if p.topic != "/diagnostics"]
    domain = random.Random(os.getpid() ^ int(time.time())).randint(100, 200)
    params_file = work / "params.yaml"
    params_file.write_text(yaml.safe_dump({fqn: {"ros__parameters": setup.parameters}}))
    env = dict(os.environ, EFFDL_ROS_BACKEND="dds", ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS="1")
    log_path = work / "node.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", executables()[executable], "--ros-args",
                                 "--params-file", str(params_file)], env=env, stdout=log, stderr=log)
    previous = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    try:
        graph = InprocGraph(backend="dds")
    finally:
        if previous is None:
            os.environ.pop("ROS_DOMAIN_ID", None)
        else:
            os.environ["ROS_DOMAIN_ID"] = previous
    try:
        fuzzer = graph.add(lambda **kw: Node("fuzzer", **kw))
        statuses: List[Any] = []

        def on_diag(msg):
            statuses.extend(s for s in msg.status if s.name == fqn + DIAGNOSTICS_NAME_SUFFIX)

        fuzzer.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 100)
        outputs: Dict[str, int] = collections.Counter()
        for topic, typ, qos in outs:
            fuzzer.create_subscription(typ, topic, lambda _m, t=topic: outputs.update([t]), qos)
        pubs = [(topic, typ, fuzzer.create_publisher(typ, topic, qos)) for topic, typ, qos in subs]

        def alive() -> bool:
            return proc.poll() is None

        def counts() -> Dict[str, int]:
            if not statuses:
                return {}
            return {kv.key: int(kv.value) for kv in statuses[-1].values}

        end = time.monotonic() + 60.0
        while time.monotonic() < end and alive() and not all(p.get_subscription_count() for _, _, p in pubs):
            graph.spin_for(0.1)
        if not alive():
            report.started = False
            report.error = f"node exited with code {proc.returncode} before fuzzing: see {log_path}"
            report.exit_code = proc.returncode
            return report
        graph.spin_for(0.5)
        mutator = Mutator(np.random.default_rng(seed), target=fqn, bad_files=bad)
        for topic, typ, pub in pubs:
            typename = type_name(typ)
            result = TopicResult(topic=topic, typename=typename, kinds=len(mutator.kinds(typename)))
            before = counts()
            start = time.perf_counter()
            for i in range(count):
                _kind, msg = mutator.make(typename, i)
                pub.publish(msg)
                result.sent += 1
                graph.executor.spin_once(timeout_sec=0)
                if pace_sec > 0:
                    time.sleep(pace_sec)
                if (i + 1) % 200 == 0 and not alive():
                    break
                if progress is not None and (i + 1) % 1000 == 0:
                    progress(topic, i + 1)
            settle = time.monotonic() + 8.0
            last, stable_since = None, time.monotonic()
            while time.monotonic() < settle and alive():  # until the node's counts stop changing
                graph.spin_for(0.3)
                now_counts = counts()
                if now_counts != last:
                    last, stable_since = now_counts, time.monotonic()
                elif time.monotonic() - stable_since > 2.5:
                    break
            result.seconds = time.perf_counter() - start
            after = counts()
            result.drops = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
            if not alive():
                result.crashes = 1
                result.crash_errors.append(f"process exited with code {proc.returncode}: see {log_path}")
                report.exit_code = proc.returncode
            report.topics.append(result)
            if not alive():
                break
        report.diagnostics_seen = bool(statuses)
        if alive():
            image = [(t, p) for t, typ, p in pubs if typ is Image]
            expect = [t for t, _, _ in outs if t not in ("/energy/reports",)]
            if image:
                from effdl_ros.runtime.messages import Detection2D

                for t, typ, p in pubs:
                    if t.endswith("/energy/budget"):
                        p.publish(_sane_budget(fqn))
                    elif typ is Detection2D:
                        p.publish(_sane_detection())
                graph.spin_for(0.3)
                before = dict(outputs)
                ok = False
                for _ in range(5):  # best effort: a probe may be lost; try a few
                    image[0][1].publish(_probe_image())
                    graph.spin_for(1.0)
                    if any(outputs[t] > before.get(t, 0) for t in expect):
                        ok = True
                        break
                new = sorted(t for t in outputs if outputs[t] > before.get(t, 0) and t in expect)
                report.probe = ("ok: valid image answered on " + ", ".join(new) if ok else
                                "ok: still running (no per-image output)"
                                if all(t.startswith("/trainer") for t in expect) else
                                "FAILED: no output for a valid image after fuzzing")
            else:
                report.probe = "no image input"
        report.pickle_executed = bad.marker.exists()
        report.log_lines = sum(1 for line in log_path.read_bytes().splitlines() if b"dropped a message" in line)
        return report
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        graph.close()
        if tmp is not None:
            tmp.cleanup()


def all_nodes() -> List[str]:
    """Every node executable of the package (a node without subscriptions reports no topics)."""
    from effdl_ros.nodes import executables

    return sorted(executables())
