"""Feeding recorded frames through a graph in this process, and recording what it publishes.

`effdl-ros replay`, `demo` and the benchmarks that replay the shipped clip (budget loop, GPU) share
this: every frame is fed by the replay itself (no source node), so each frame is processed and costed;
outputs can go into a bag at the input frames' stamps.
"""
from __future__ import annotations

import time
from pathlib import Path

#: graph outputs recorded by --record: topic -> ROS type name
RECORD_TOPICS = {
    "tracks": "vision_msgs/msg/Detection2DArray",
    "ddi/classification": "vision_msgs/msg/Classification",
    "segmentation/labels": "sensor_msgs/msg/Image",
    "segmentation/label_info": "vision_msgs/msg/LabelInfo",
    "energy/reports": "effdl_ros/msg/EnergyReport",
    "energy/budget": "effdl_ros/msg/ResourceBudgetArray",
    "trainer/model_update": "effdl_ros/msg/ModelUpdate",
}


def _box_of(msg):
    """x, y, w, h of the first detection of a Detection2DArray (None when empty)."""
    detections = getattr(msg, "detections", None) or []
    if not detections:
        return None
    bbox = detections[0].bbox
    cx, cy = float(bbox.center.position.x), float(bbox.center.position.y)
    w, h = float(bbox.size_x), float(bbox.size_y)
    return [cx - w / 2, cy - h / 2, w, h]


def replay(inp, pipeline, pacer, *, record=None, timeout: float = 10.0, on_frame=None,
           record_storage=None, init_box=None, foxglove=None):
    """Feed every frame of `inp` through the pipeline's graph; returns (records, events, seconds).

    The tracker (where the graph has one) is initialised on the first frame from init_box, else from
    the sequence's first ground-truth box; its box, and the ground truth where there is one, go into
    each record. on_frame(i, session) runs before frame i is fed (the demo lowers the budget there).
    foxglove: a started effdl_ros.viz.foxglove_bridge.FoxgloveBridge, fed from the graph and closed here.
    """
    from effdl_ros.graph.session import GraphSession

    session = GraphSession(pipeline)
    writer = None
    try:
        if record:
            writer = _start_recorder(session, Path(record), record_storage)
        if foxglove is not None:
            foxglove.attach(session.graph.context)
        tracker = session.node("tracker")
        records = []
        seen_tracks = 0
        start = time.monotonic()
        for frame in inp.frames():
            pacer.wait(frame.stamp_ns, idle=session.graph.spin_for)
            if on_frame is not None:
                on_frame(frame.index, session)
            first_box = init_box if init_box is not None else frame.gt_box
            if tracker is not None and frame.index == 0 and first_box is not None:
                session.init_tracker(first_box)
            extra = {"input_stamp_ns": frame.stamp_ns}
            rec = session.feed(frame.image, timeout_sec=timeout, extra=extra, stamp_ns=frame.stamp_ns,
                               frame_id=frame.frame_id)
            if inp.has_ground_truth:
                rec["gt_box"] = [float(v) for v in frame.gt_box]
            if tracker is not None:
                tracks = session.observer.stats.get("tracks")
                fresh = tracks is not None and tracks.count > seen_tracks
                rec["box"] = _box_of(tracks.last) if fresh else None
                seen_tracks = tracks.count if tracks is not None else 0
            records.append(rec)
        elapsed = time.monotonic() - start
        if not records:
            from effdl_ros.errors import DataError

            raise DataError(f"replay input {inp.path} gave no frames")
        return records, [], elapsed
    finally:
        if foxglove is not None:
            foxglove.close()
        session.close()
        if writer is not None:
            writer.__exit__(None, None, None)


#: outputs published once and kept for late subscribers (reliable + transient local)
LATCHED_TOPICS = ("segmentation/label_info", "energy/budget", "trainer/model_update")


def _start_recorder(session, path: Path, storage=None):
    """Subscribe the replay node to every graph output and record what arrives (_Recorder)."""
    from effdl_ros.data.bags import BagWriter, storage_for
    from effdl_ros.runtime.local.typesupport import typestore
    from effdl_ros.runtime.messages import get_message_class
    from effdl_ros.runtime.qos import latched

    recorder = _Recorder(BagWriter(path, storage=storage or storage_for(path), typestore=typestore()), session)
    for topic, typename in RECORD_TOPICS.items():
        is_latched = topic in LATCHED_TOPICS
        session.feeder.create_subscription(
            get_message_class(typename), topic,
            lambda msg, t=topic, ty=typename, lt=is_latched: recorder.write(t, ty, msg, lt),
            latched(1) if is_latched else 10)
    return recorder


class _Recorder:
    """Writes the graph's outputs into a bag, each at the header stamp of the input frame being
    processed (the replay's clock is the input's), latched topics as transient-local; what arrives
    before the first frame (latched label info, budgets) is written at that frame's stamp."""

    def __init__(self, writer, session) -> None:
        self.writer, self.session = writer, session
        self.early = []
        writer.__enter__()

    def write(self, topic: str, typename: str, msg, is_latched: bool) -> None:
        self.early.append((topic, typename, msg, is_latched))
        self.flush()

    def flush(self) -> None:
        stamp = self.session.stamp_ns
        while stamp is not None and self.early:
            topic, typename, msg, is_latched = self.early.pop(0)
            self.writer.write("/" + topic, typename, msg, stamp, latched=is_latched)

    def __exit__(self, *exc) -> None:
        self.flush()
        self.writer.__exit__(*exc)
