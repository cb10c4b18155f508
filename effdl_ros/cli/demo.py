"""`effdl-ros demo`: the whole graph in one process on the bundled real clip, live, with a report.

It is a replay (effdl_ros.cli.replay) of samples/vtest, looped, with three additions: the tracker is
given a pedestrian to follow on the first frame of every loop; the energy monitor first measures the
graph unconstrained (calibration) and sets the total budget to 60 % of that, so the budget binds; and
halfway through the total is halved (30 %). The live table and the report's knobs.png show each node's
knob (ddi exit / MAC ceiling, segmentation scale, tracker level) giving way to hold the budget.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from effdl_ros.errors import ConfigError

#: a pedestrian in the first frame of samples/vtest (x, y, w, h in pixels of the 320x240 frames)
DEMO_BOX = (144.0, 82.0, 16.0, 33.0)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="pipeline YAML (default: shipped config/pipeline.yaml)")
    parser.add_argument("--input", default="samples/vtest",
                        help="frame folder or video (default: the bundled clip samples/vtest)")
    parser.add_argument("--init-box", default=",".join(f"{v:g}" for v in DEMO_BOX),
                        help="x,y,w,h of the object the tracker follows from the first frame")
    parser.add_argument("--frames", type=int, default=None, help="process at most this many frames (per loop)")
    parser.add_argument("--loops", type=int, default=4,
                        help="play the clip this many times (default 4: 160 frames, 32 s at 5 frames/s)")
    parser.add_argument("--calibrate", type=float, default=6.0,
                        help="seconds the graph runs unconstrained before the total is set to 60 %% of its "
                             "power (default 6; 0 = keep the configured total_power_w)")
    parser.add_argument("--fps", type=float, default=5.0,
                        help="play the clip at this rate (default 5, the bundled clip's own rate; "
                             "0 = as fast as the graph goes)")
    parser.add_argument("--report", default="effdl_ros_demo_report", help="report folder")
    parser.add_argument("--no-live", action="store_true", help="print a line per frame instead of a live table")
    from effdl_ros.viz.foxglove_bridge import add_arguments as add_foxglove_arguments

    add_foxglove_arguments(parser)


def _fmt(value, digits: int) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _table(record, index: int, total, fps: float, phase: str):
    from rich.table import Table

    table = Table(title=f"effdl_ros demo - frame {index}/{total or '?'} - {fps:.1f} frames/s - {phase}")
    for column in ("node", "callback ms", "power W", "budget W", "knob", "energy/item J", "source"):
        table.add_column(column)
    record = record or {}
    names = sorted(set(record.get("latency_ms", {})) | set(record.get("power_w", {})))
    for name in names:
        table.add_row(name, _fmt(record.get("latency_ms", {}).get(name), 1),
                      _fmt(record.get("power_w", {}).get(name), 3),
                      _fmt(record.get("budget_w", {}).get(name), 3),
                      record.get("knob_text", {}).get(name, ""),
                      _fmt(record.get("energy_j", {}).get(name), 4),
                      record.get("energy_source", {}).get(name, "-"))
    return table


def run_demo(args: argparse.Namespace) -> int:
    from effdl_ros.runtime import backend

    backend.select("inproc")
    from effdl_ros.bench.replay import Pacer, open_input
    from effdl_ros.bench.report import write_report
    from effdl_ros.graph.replay import replay
    from effdl_ros.graph.signals import StopRequested, stop_on_signals
    from effdl_ros.graph.validate import checked_pipeline
    from effdl_ros.runtime import Parameter
    from effdl_ros.viz.foxglove_bridge import start_from_args as start_foxglove

    try:
        box = [float(v) for v in args.init_box.split(",")]
        assert len(box) == 4 and box[2] > 0 and box[3] > 0
    except (ValueError, AssertionError):
        raise ConfigError(f"--init-box must be x,y,w,h with a positive size, got {args.init_box!r}") from None
    pipeline = checked_pipeline(args.config)
    from effdl_ros.bench.budget_loop import knob_text, looped, node_knobs

    if args.calibrate > 0:
        for spec in pipeline.nodes:
            if spec.executable == "energy_monitor":
                spec.parameters.update(calibrate_s=float(args.calibrate), budget_fraction=0.6)
    inp = looped(open_input(args.input, limit=args.frames, fps=args.fps if args.fps > 0 else 10.0),
                 max(1, args.loops))
    total = inp.count
    loop_len = total // max(1, args.loops) if total else 0
    phase0 = "calibrating: budget unconstrained" if args.calibrate > 0 else "full budget"
    events, state = [], {"phase": phase0, "start": time.monotonic(), "live": None, "halved": False}

    def on_frame(index: int, session) -> None:
        monitor = session.node("energy_monitor")
        record = session.last_record
        if record is not None:  # the knobs each node ran the last frame with (live table, knobs.png)
            knobs = node_knobs(session)
            record["knob"] = knobs
            record["knob_text"] = {f"/{n}": knob_text(k, f"/{n}") for n, k in knobs.items()}
        calibrated = getattr(monitor, "calibrated_w", None) if monitor is not None else None
        if calibrated is not None and state["phase"] == phase0 and args.calibrate > 0:
            state["phase"] = f"total 60 % of {calibrated:.2f} W = {0.6 * calibrated:.2f} W"
            events.append({"t_s": time.monotonic() - session.start, "text": "calibrated: total 60 %"})
        if monitor is not None and total and index >= total // 2 and not state["halved"] and (
                calibrated is not None or args.calibrate <= 0):
            state["halved"] = True
            if calibrated is not None:
                monitor.set_parameters([Parameter("budget_fraction", value=0.3)])
                half = monitor.policy.config.total_power_w
            else:
                half = monitor.get_parameter("total_power_w").value / 2
                monitor.set_parameters([Parameter("total_power_w", value=half)])
            state["phase"] = f"budget halved to {half:.2f} W"
            events.append({"t_s": time.monotonic() - session.start, "text": "total budget halved"})
        if loop_len and index and index % loop_len == 0 and session.node("tracker") is not None:
            session.init_tracker(box)  # the clip starts again: the same pedestrian
        if index == 0:
            return
        fps = index / max(1e-6, time.monotonic() - state["start"])
        record = session.last_record
        if state["live"] is not None:
            state["live"].update(_table(record, index, total, fps, state["phase"]))
        else:
            lat = ", ".join(f"{k} {v:.1f} ms" for k, v in (record or {}).get("latency_ms", {}).items())
            knobs = "; ".join(f"{k} {v}" for k, v in (record or {}).get("knob_text", {}).items())
            print(f"frame {index}/{total or '?'}  {fps:.1f} frames/s  {lat}  {knobs}  [{state['phase']}]", flush=True)

    if not args.no_live:
        from rich.live import Live

        state["live"] = Live(_table(None, 0, total, 0.0, state["phase"]), refresh_per_second=4)
        state["live"].start()
    try:
        with stop_on_signals():
            records, _, elapsed = replay(inp, pipeline, Pacer(1.0 if args.fps > 0 else None),
                                        on_frame=on_frame, init_box=box, foxglove=start_foxglove(args))
    except StopRequested as stop:
        print(f"effdl-ros demo: {stop.args[0]} received, graph stopped; no report written", flush=True)
        return 0
    finally:
        if state["live"] is not None:
            state["live"].stop()
    out = Path(args.report)
    metrics = write_report(records, out, title="effdl_ros demo", events=events,
                           meta={"input": str(inp.path), "frames": len(records), "init_box": box})
    from effdl_ros.bench.budget_loop import plot_demo_knobs

    if plot_demo_knobs(records, out / "knobs.png", events):
        metrics.setdefault("plots", []).append("knobs.png")
    print(f"processed {len(records)} frames in {elapsed:.1f} s ({len(records) / max(elapsed, 1e-9):.1f} "
          f"frames/s); report in {out}/ (metrics.json, summary.md, {', '.join(metrics.get('plots', []))})")
    return 0


def register(cli) -> None:
    cli.add(None, "demo", help="run the whole graph on the bundled real clip and write a report",
            configure=_configure, run=run_demo)
