"""`effdl-ros replay INPUT`: run the configured graph over a bag or frame folder and write a report.

INPUT: a rosbag2 folder or .db3/.mcap file, a ROS 1 .bag, a tracking sequence (OTB/VOT/UAV123 layout
with ground truth), a frame folder or a video. The graph runs in this process (inproc backend); the
replay feeds every frame itself (no source node) so that each frame is processed and costed, and
records per-node callback time, the nodes' EnergyReports and the monitor's budgets per frame.
"""
from __future__ import annotations

import argparse
from pathlib import Path


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
    from effdl_ros.graph.replay import replay
    from effdl_ros.graph.signals import StopRequested, stop_on_signals
    from effdl_ros.graph.validate import checked_pipeline

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
