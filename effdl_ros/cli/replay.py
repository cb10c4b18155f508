"""`effdl-ros replay INPUT`: run the configured graph over a bag or frame folder and write a report.

INPUT: a rosbag2 folder or .db3/.mcap file, a ROS 1 .bag, a tracking sequence (OTB/VOT/UAV123 layout
with ground truth), a frame folder or a video. The graph runs in this process (inproc backend); the
replay feeds every frame itself (no source node) so that each frame is processed and costed, and
records per-node callback time, the nodes' EnergyReports and the monitor's budgets per frame.
"""
from __future__ import annotations

import argparse
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


def register(cli) -> None:
    cli.add(None, "replay",
            help="replay a bag (rosbag2 sqlite3/mcap, ROS 1) or frame folder through the graph and "
                 "write a report",
            configure=_configure, run=_run)


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="rosbag2 folder/.db3/.mcap, ROS 1 .bag, OTB/VOT sequence folder, "
                                 "frame folder or video")
    p.add_argument("--config", default=None, help="pipeline YAML (default: the shipped config/pipeline.yaml)")
    p.add_argument("--image-topic", default=None,
                   help="the bag's image topic (needed only when it has several)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=1.0,
                      help="play at this multiple of the recorded rate, as ros2 bag play (default 1.0)")
    pace.add_argument("--as-fast-as-possible", action="store_true",
                      help="release each frame as soon as the graph has finished the previous one")
    p.add_argument("--fps", type=float, default=10.0,
                   help="nominal rate of frame folders and videos, which carry no time stamps (default 10)")
    p.add_argument("--max-frames", type=int, default=None, help="replay at most this many frames")
    p.add_argument("--report", default=None, help="write the report (metrics.json, summary.md, plots) here")
    p.add_argument("--record", default=None,
                   help="record the graph's outputs into this new rosbag2 bag folder (as ros2 bag record -o)")
    p.add_argument("--record-storage", choices=("sqlite3", "mcap"), default=None,
                   help="storage of --record (default: mcap when the name ends in .mcap, else sqlite3)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for a node's output to one frame (default 10)")
    from effdl_ros.viz.foxglove_bridge import add_arguments as add_foxglove_arguments

    add_foxglove_arguments(p)


def _run(args: argparse.Namespace) -> int:
    from effdl_ros.bench.replay import Pacer, open_input

    inp = open_input(args.input, image_topic=args.image_topic, fps=args.fps, limit=args.max_frames)
    pacer = Pacer(None if args.as_fast_as_possible else args.rate)
    from effdl_ros.runtime import backend

    backend.select("inproc")
    from effdl_ros.cli.graph import checked_pipeline
    from effdl_ros.graph.signals import StopRequested, stop_on_signals

    pipeline = checked_pipeline(args.config)
    what = f"{inp.kind} {inp.path}" + (f" topic {inp.topic}" if inp.topic else "")
    print(f"replaying {what}: {inp.count if inp.count is not None else '?'} frames"
          + (" with ground truth" if inp.has_ground_truth else "")
          + (", as fast as possible" if pacer.rate is None else f", rate x{pacer.rate:g}"), flush=True)
    from effdl_ros.viz.foxglove_bridge import start_from_args as start_foxglove

    try:
        with stop_on_signals():
            records, events, elapsed = replay(inp, pipeline, pacer, record=args.record, timeout=args.timeout,
                                              record_storage=args.record_storage,
                                              foxglove=start_foxglove(args))
    except StopRequested as stop:
        print(f"effdl-ros replay: {stop.args[0]} received, graph stopped"
              + (f"; the frames so far are in {args.record}" if args.record else ""), flush=True)
        return 0
    rate = len(records) / elapsed if elapsed > 0 else 0.0
    print(f"replayed {len(records)} frames in {elapsed:.1f} s ({rate:.1f} frames/s)"
          + (f"; {pacer.late} frames released late (graph slower than the recording)" if pacer.late else ""))
    if args.record:
        print(f"recorded the graph's outputs in {args.record}")
    if args.report:
        from effdl_ros.bench.report import write_report

        meta = {"input": str(inp.path), "kind": inp.kind, "config": str(pipeline.path),
                "pacing": "as fast as possible" if pacer.rate is None else f"rate x{pacer.rate:g}"}
        if inp.topic:
            meta["image_topic"] = inp.topic
        metrics = write_report(records, Path(args.report), title=f"effdl_ros replay of {inp.name}",
                               meta=meta, events=events)
        track = metrics.get("tracking")
        if track:
            print(f"tracking: success AUC {track['success_auc']:.3f}, precision@20px "
                  f"{track['precision_20px']:.3f} over {track['frames_with_gt']} frames")
        print(f"report in {args.report}/ (metrics.json, summary.md, frames.jsonl, "
              f"{', '.join(metrics.get('plots', [])) or 'no plots'})")
    return 0


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
    from effdl_ros.cli.session import GraphSession

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
