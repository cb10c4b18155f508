"""Drive the configured graph over a sequence of frames and record what each frame cost.

The demo and replay feed frames themselves (instead of the source node) so that every frame is
processed and its outputs, per-node callback time, energy and budget are recorded in one place;
records feed effdl_ros.bench.report.
"""
from __future__ import annotations

import collections
import time
from typing import Any, Dict, Iterable, Optional

import numpy as np

from effdl_ros.graph.launch import Pipeline, create_nodes
from effdl_ros.runtime.testing import InprocGraph

#: executable -> the topic on which it answers each image
OUTPUT_TOPICS = {"ddi": "ddi/classification", "segmentation": "segmentation/labels",
                 "tracker": "tracks"}


class GraphSession:
    def __init__(self, pipeline: Pipeline, *, overrides: Optional[Dict[str, Dict[str, Any]]] = None,
                 skip: Iterable[str] = ("source",), image_topic: str = "image",
                 keep_messages: bool = False) -> None:
        from effdl_ros.nodes.observer import ObserverNode
        from effdl_ros.runtime import Node, Parameter
        from effdl_ros.runtime.messages import Image
        from effdl_ros.runtime.qos import qos_profile_sensor_data

        skip = set(skip)
        self.graph = InprocGraph(backend="inproc")
        names = [s.name for s in pipeline.nodes if s.executable not in skip]
        self.specs = [s for s in pipeline.nodes if s.name in names]
        self.nodes = create_nodes(pipeline, self.graph, only=names, overrides=overrides)
        self.feeder = self.graph.add(lambda **kw: Node("replay", **kw))
        self._image_pub = self.feeder.create_publisher(Image, image_topic, qos_profile_sensor_data)
        self.observer = self.graph.add(ObserverNode, parameter_overrides=[
            Parameter("keep_messages", value=keep_messages)])
        self.outputs = [OUTPUT_TOPICS[s.executable] for s in self.specs if s.executable in OUTPUT_TOPICS]
        self._callback_time: Dict[str, float] = collections.defaultdict(float)
        self.graph.executor.on_callback = self._on_callback
        self.start = time.monotonic()
        self.index = 0
        self._previous_reports: Dict[str, tuple] = {}  # node -> (energy_j, items) of its last new report
        self._per_item: Dict[str, float] = {}
        self._init_pub = None
        self.last_record: Optional[dict] = None
        self.stamp_ns: Optional[int] = None  # header stamp of the frame being fed

    def _on_callback(self, entity: Any, seconds: float) -> None:
        self._callback_time[getattr(entity, "node_name", "?")] += seconds

    def node(self, executable: str):
        for spec in self.specs:
            if spec.executable == executable:
                return self.nodes[spec.name]
        return None

    def feed(self, frame_rgb: np.ndarray, *, timeout_sec: float = 10.0, extra: Optional[dict] = None,
             stamp_ns: Optional[int] = None, frame_id: str = "camera") -> dict:
        """Publish one rgb8 frame, run the graph until every output for it arrived, return its record.

        stamp_ns: the input's own header stamp (a bag's), which every output then carries, so
        recorded outputs join the input by stamp; None stamps the frame with the clock's now.
        """
        from effdl_ros.runtime import Time
        from effdl_ros.runtime.images import cv2_to_imgmsg
        from effdl_ros.runtime.messages import Header

        counts = {t: self.observer.stats[t].count for t in self.outputs if t in self.observer.stats}
        self._callback_time.clear()
        stamp = self.feeder.get_clock().now() if stamp_ns is None else Time(nanoseconds=int(stamp_ns))
        self.stamp_ns = stamp.nanoseconds
        self._image_pub.publish(cv2_to_imgmsg(frame_rgb, "rgb8", header=Header(
            stamp=stamp.to_msg(), frame_id=frame_id or "camera")))
        def answered() -> bool:
            return all(self.observer.stats[t].count > c for t, c in counts.items())

        # In process, every callback the frame triggers has run once the executor is idle: an output
        # still missing then was skipped on purpose (a budget below a node's cheapest work). Only a
        # graph with other threads (dds) is worth waiting for.
        self.graph.spin_until_idle()
        if not answered() and self.graph.context.backend != "inproc":
            self.graph.spin_until(answered, timeout_sec=timeout_sec)
        record = {"index": self.index, "t_s": time.monotonic() - self.start, "stamp_ns": stamp.nanoseconds,
                  "latency_ms": {n.strip("/"): s * 1e3 for n, s in self._callback_time.items()
                                 if n not in ("/replay", "/observer")}}
        record.update(self._energy_fields())
        if not answered():  # a node skipped the frame (e.g. a budget below its cheapest exit) or is slow
            record["missing_outputs"] = [t for t, c in counts.items() if self.observer.stats[t].count <= c]
        if extra:
            record.update(extra)
        self.index += 1
        self.last_record = record
        return record

    def init_tracker(self, box) -> None:
        """Send the tracker the box to follow (x, y, w, h in pixels) on tracker/init."""
        from effdl_ros.runtime.messages import Detection2D
        from effdl_ros.runtime.qos import latched

        if self._init_pub is None:
            self._init_pub = self.feeder.create_publisher(Detection2D, "tracker/init", latched(1))
        msg = init_message([float(v) for v in box])
        msg.header.stamp = self.feeder.get_clock().now().to_msg()
        self._init_pub.publish(msg)
        self.graph.spin_until_idle()

    def spin_for(self, seconds: float) -> None:
        self.graph.spin_for(seconds)

    def _energy_fields(self) -> dict:
        """Per-frame energy per node = change in its reported energy / change in its item count
        between its two latest reports (reports come at ~1 Hz, so frames in between share it)."""
        out: Dict[str, dict] = {"energy_j": {}, "energy_source": {}, "power_w": {}, "budget_w": {}}
        for report in getattr(self.observer, "latest_reports", {}).values():
            name = report.node.strip("/")
            previous = self._previous_reports.get(name)
            if previous is not None and report.items_processed > previous[1]:
                self._per_item[name] = ((report.energy_j - previous[0])
                                        / (report.items_processed - previous[1]))
            if previous is None or report.items_processed != previous[1]:
                self._previous_reports[name] = (report.energy_j, report.items_processed)
            if name in self._per_item:
                out["energy_j"][name] = self._per_item[name]
            out["energy_source"][name] = "measured" if report.source == 0 else "modelled"
            out["power_w"][name] = report.power_w
        budget = self.observer.stats.get("energy/budget")
        if budget is not None and budget.last is not None:
            out["budget_w"]["total"] = budget.last.total_power_w
            for item in budget.last.budgets:
                out["budget_w"][item.target_node.strip("/")] = item.power_w
        return {k: v for k, v in out.items() if v}

    def close(self) -> None:
        self.graph.close()


def init_message(box, frame_id: str = "camera"):
    """The Detection2D that asks the tracker to follow the box x, y, w, h (centre and size)."""
    from effdl_ros.runtime.messages import Detection2D

    x, y, w, h = box
    msg = Detection2D()
    msg.header.frame_id = frame_id
    msg.bbox.center.position.x = x + w / 2
    msg.bbox.center.position.y = y + h / 2
    msg.bbox.size_x = w
    msg.bbox.size_y = h
    return msg
