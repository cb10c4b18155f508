"""`effdl-ros demo`: the whole graph in one process on the bundled real clip, live, with a report.

Halfway through, the total energy budget is halved so the nodes can be seen adapting.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="pipeline YAML (default: shipped config/pipeline.yaml)")
    parser.add_argument("--input", default="samples/vtest",
                        help="frame folder or video (default: the bundled clip samples/vtest)")
    parser.add_argument("--frames", type=int, default=0, help="process at most this many frames (0 = all)")
    parser.add_argument("--report", default="effdl_ros_demo_report", help="report folder")
    parser.add_argument("--no-live", action="store_true", help="print a line per frame instead of a live table")


def _table(session, index: int, total: int, fps: float, phase: str):
    from rich.table import Table

    table = Table(title=f"effdl_ros demo - frame {index}/{total} - {fps:.1f} frames/s - {phase}")
    for column in ("node", "callback ms (last)", "power W", "budget W", "energy/item J", "source"):
        table.add_column(column)
    last = session.last_record or {}
    names = sorted(set(last.get("latency_ms", {})) | set(last.get("power_w", {})))
    for name in names:
        table.add_row(
            name, f"{last.get('latency_ms', {}).get(name, float('nan')):.1f}",
            f"{last.get('power_w', {}).get(name, float('nan')):.2f}",
            f"{last.get('budget_w', {}).get(name, float('nan')):.2f}",
            f"{last.get('energy_j', {}).get(name, float('nan')):.4f}",
            last.get("energy_source", {}).get(name, "-"))
    return table


def run_demo(args: argparse.Namespace) -> int:
    from effdl_ros.runtime import backend

    backend.select("inproc")
    import cv2

    from effdl_ros.bench.report import write_report
    from effdl_ros.cli.graph import default_config
    from effdl_ros.cli.session import GraphSession
    from effdl_ros.data.frames import FrameSource
    from effdl_ros.runtime import Parameter
    from effdl_ros.runtime.launch import load_pipeline

    pipeline = load_pipeline(args.config or default_config())
    frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in FrameSource(args.input, max_frames=args.frames)]
    session = GraphSession(pipeline)
    session.last_record = None
    monitor = session.node("energy_monitor")
    total_w = monitor.get_parameter("total_power_w").value if monitor is not None else None
    prepare = getattr(session.node("tracker"), "demo_init", None)
    records, events, start, phase = [], [], time.monotonic(), "full budget"
    live = None
    if not args.no_live:
        from rich.live import Live

        live = Live(_table(session, 0, len(frames), 0.0, phase), refresh_per_second=4)
        live.start()
    try:
        for i, frame in enumerate(frames):
            if monitor is not None and i == len(frames) // 2:
                monitor.set_parameters([Parameter("total_power_w", value=total_w / 2)])
                phase = f"budget halved to {total_w / 2:.1f} W"
                events.append({"t_s": time.monotonic() - session.start, "text": "total budget halved"})
            if i == 0 and prepare is not None:
                prepare(frame)
            record = session.feed(frame, extra={"budget_phase": phase})
            records.append(record)
            session.last_record = record
            fps = (i + 1) / max(1e-6, time.monotonic() - start)
            if live is not None:
                live.update(_table(session, i + 1, len(frames), fps, phase))
            else:
                lat = ", ".join(f"{k} {v:.1f} ms" for k, v in record.get("latency_ms", {}).items())
                print(f"frame {i + 1}/{len(frames)}  {fps:.1f} frames/s  {lat}  [{phase}]")
    finally:
        if live is not None:
            live.stop()
        session.close()
    out = Path(args.report)
    metrics = write_report(records, out, title="effdl_ros demo", events=events,
                           meta={"input": args.input, "frames": len(records)})
    elapsed = time.monotonic() - start
    print(f"processed {len(records)} frames in {elapsed:.1f} s; report in {out}/ "
          f"(metrics.json, summary.md, plots)")
    return 0 if metrics else 1


def register(cli) -> None:
    cli.add(None, "demo", help="run the whole graph on the bundled real clip and write a report",
            configure=_configure, run=run_demo)
