"""`effdl-ros bench multihost`: one graph over three network-namespace hosts (effdl_ros.graph.multihost)."""
from __future__ import annotations

import argparse


def register(cli) -> None:
    cli.add("bench", "multihost",
            help="root only: source on host A, model nodes on B, energy monitor on C (network namespaces "
                 "on a bridge, dds backend); outputs vs a one-host run, latency per hop, B killed and restarted",
            configure=_configure, run=_run)


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", default="ddi,segmentation",
                   help="model nodes on host B, comma-separated: ddi, segmentation (default both)")
    p.add_argument("--frames", type=int, default=20, help="outputs to collect per run (default 20)")
    p.add_argument("--rate", type=float, default=4.0, help="source frames per second (default 4)")
    p.add_argument("--width", type=int, default=320, help="frame width the source resizes to (default 320)")
    p.add_argument("--keep", default=None, help="copy the hosts' logs and probe records to this folder")
    p.add_argument("--json", dest="json_out", default=None, help="write the result to this JSON file")


def _run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from effdl_ros.atomic_io import atomic_write_text
    from effdl_ros.errors import ConfigError
    from effdl_ros.graph.multihost import run_multihost, table

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.frames < 1 or args.rate <= 0 or args.width < 16:
        raise ConfigError("--frames must be >= 1, --rate > 0 and --width >= 16")
    from effdl_ros.graph.signals import StopRequested, stop_on_signals

    with stop_on_signals():  # Ctrl-C or SIGTERM still ends every process and removes the namespaces
        try:
            result = run_multihost(models=models, frames=args.frames, rate_hz=args.rate, width=args.width,
                                   keep=Path(args.keep) if args.keep else None,
                                   log=lambda text: print(text, flush=True))
        except StopRequested as stop:
            print(f"effdl-ros bench multihost: {stop.args[0]} received; hosts removed", flush=True)
            return 1
    print(table(result))
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    ok = result["match"]["frames_differing"] == 0 and result["match"]["frames_compared"] > 0
    return 0 if ok else 1
