"""`effdl-ros bench gpu`: the model nodes' budget levels on a GPU against the CPU (docs/gpu.md)."""
from __future__ import annotations

import argparse

from effdl_ros.cli.options import add_json_option, write_json


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cuda", help="cuda | cuda:N | auto | cpu (default cuda; cpu runs the CPU "
                   "rows only)")
    add_json_option(p, "write the results here")
    p.add_argument("--items", type=int, default=200, help="DDI items per level (default 200)")
    p.add_argument("--seg-frames", type=int, default=20, help="segmentation frames per level (default 20)")
    p.add_argument("--track-frames", type=int, default=30, help="tracker frames per level (default 30)")
    p.add_argument("--min-seconds", type=float, default=None,
                   help="run each level at least this long, for the energy counter (default 1 on a GPU, 0 on a CPU)")
    p.add_argument("--no-fp16", action="store_true", help="skip the fp16 rows")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU rows when --device is a GPU")
    p.add_argument("--nodes", default="ddi,segmentation,tracker", help="comma-separated nodes to bench")
    p.add_argument("--demo-frames", type=int, default=120,
                   help="frames of the demo graph at a binding budget, at 5 frames/s (default 120; 0 = skip)")
    p.add_argument("--demo-calibrate", type=float, default=4.0, help="seconds unconstrained before the budget binds")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def _run(args: argparse.Namespace) -> int:
    import torch

    from effdl_ros.bench.gpu import GpuBenchOptions, bench_device, demo_graph, format_table
    from effdl_ros.device import resolve_device
    from effdl_ros.errors import ConfigError

    resolve_device(args.device, what="--device")   # a missing GPU: one sentence before any work
    nodes = tuple(n for n in args.nodes.split(",") if n)
    unknown = set(nodes) - {"ddi", "segmentation", "tracker"}
    if unknown or not nodes:
        raise ConfigError(f"--nodes {args.nodes!r}: choose from ddi, segmentation, tracker")
    if min(args.items, args.seg_frames, args.track_frames) < 1 or args.demo_frames < 0:
        raise ConfigError("--items, --seg-frames and --track-frames must be >= 1 and --demo-frames >= 0")
    torch.set_num_threads(max(1, args.threads))
    opts = GpuBenchOptions(device=args.device, items=args.items, seg_frames=args.seg_frames,
                           track_frames=args.track_frames, min_seconds=args.min_seconds, fp16=not args.no_fp16,
                           compare_cpu=not args.no_cpu, nodes=nodes)
    result = bench_device(args.device, opts)
    result["threads"] = torch.get_num_threads()
    if args.demo_frames:
        result["demo"] = demo_graph(args.device, frames=args.demo_frames, calibrate_s=args.demo_calibrate)
    print(format_table(result))
    print("ms: median batch-1, device synchronised per item (measured); J/item: 'measured' rows from the "
          "meter named above, 'modelled' rows = executed MACs x the energy profile")
    if args.json:
        write_json(args.json, result)
    return 0


def register(cli) -> None:
    cli.add("bench", "gpu", help="each model node's budget levels on a GPU vs the CPU: ms and J per item, fp16, "
            "and the demo graph at a binding budget (docs/gpu.md)", configure=_configure, run=_run)
