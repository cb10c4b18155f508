"""Measure what the live view costs the demo: `python -m effdl_ros.viz.overhead [--repeats 3]`.

Runs `effdl-ros demo --no-live --fps 0` (every frame as soon as the graph is free) over the bundled
clip in three ways, interleaved `repeats` times: without --foxglove, with --foxglove and no viewer,
and with one viewer (effdl_ros.viz.client) subscribed to every channel and reading all it gets.
Prints the demo's own frames/s and the sum of the nodes' median per-frame callback times (the
report's metrics.json) as medians over the repeats, and writes them as JSON with --out.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List

MODES = ("off", "on, no viewer", "on, one viewer")


def _viewer(port: int, stop: threading.Event, counts: Dict[str, int]) -> None:
    from effdl_ros.viz.client import FoxgloveClient

    with FoxgloveClient(f"ws://127.0.0.1:{port}") as client:
        from effdl_ros.viz.foxglove_bridge import ANNOTATIONS_TOPIC, POWER_TOPIC, ROS_TOPICS

        topics = list(ROS_TOPICS) + [ANNOTATIONS_TOPIC, POWER_TOPIC]
        client.wait_for_topics(topics, timeout=120)
        client.subscribe(topics)
        while not stop.is_set():
            try:
                message = client.next(timeout=0.5)
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001 - the demo ended and closed the connection
                return
            counts[message.topic] = counts.get(message.topic, 0) + 1
            counts["bytes"] = counts.get("bytes", 0) + len(message.payload)


def run_once(mode: str, frames: int, folder: Path) -> Dict[str, float]:
    report = folder / f"report_{mode.replace(' ', '_').replace(',', '')}_{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "effdl_ros.cli.main", "demo", "--no-live", "--fps", "0",
           "--frames", str(frames), "--report", str(report)]
    if mode != "off":
        cmd += ["--foxglove", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    stop, counts, viewer = threading.Event(), {}, None
    lines: List[str] = []
    for line in proc.stdout:
        lines.append(line)
        match = re.search(r"ws://localhost:(\d+)", line)
        if match and mode == "on, one viewer":
            viewer = threading.Thread(target=_viewer, args=(int(match.group(1)), stop, counts), daemon=True)
            viewer.start()
        if match:
            break
    lines.append(proc.communicate()[0])
    stop.set()
    if viewer is not None:
        viewer.join(timeout=5)
    text = "".join(lines)
    found = re.search(r"processed (\d+) frames in ([\d.]+) s \(([\d.]+) frames/s\)", text)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"demo failed ({mode}):\n{text[-3000:]}")
    metrics = json.loads((report / "metrics.json").read_text())
    callback_ms = sum(v.get("p50", 0.0) for v in metrics.get("latency_ms", {}).values() if isinstance(v, dict))
    cpu = re.search(r"bridge thread CPU ([\d.]+) s", text)
    return {"frames_per_s": float(found.group(3)), "callback_ms_per_frame": callback_ms,
            "bridge_cpu_ms_per_frame": float(cpu.group(1)) * 1e3 / int(found.group(1)) if cpu else 0.0,
            "viewer_messages": sum(v for k, v in counts.items() if k != "bytes"),
            "viewer_mb": counts.get("bytes", 0) / 1e6}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    runs: Dict[str, List[Dict[str, float]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="effdl_ros_fox_") as tmp:
        for i in range(args.repeats):
            for mode in MODES:
                result = run_once(mode, args.frames, Path(tmp))
                runs[mode].append(result)
                print(f"run {i + 1} {mode}: {result}", flush=True)
    summary = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in runs.items()}
    base = summary["off"]["frames_per_s"]
    print(f"\nmedians over {args.repeats} runs of {args.frames} frames (demo --fps 0):")
    for mode, values in summary.items():
        change = (values["frames_per_s"] / base - 1) * 100 if base else float("nan")
        print(f"  {mode:15s} {values['frames_per_s']:6.2f} frames/s ({change:+.1f} %), median node callbacks "
              f"{values['callback_ms_per_frame']:.1f} ms/frame, viewer got {values['viewer_messages']:.0f} "
              f"messages ({values['viewer_mb']:.1f} MB), bridge thread CPU "
              f"{values['bridge_cpu_ms_per_frame']:.2f} ms/frame")
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
