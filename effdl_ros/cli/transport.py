"""`effdl-ros bench transport`: parses the options, runs effdl_ros.bench.transport, prints the table
and writes the JSON. The measurement (and what latency means) is documented there."""
from __future__ import annotations

import argparse
import os
import random
from typing import List, Optional

from rich.console import Console

from effdl_ros.cli.options import add_json_option, write_json
from effdl_ros.errors import ConfigError, DataError

RATES = ("30", "100", "max")


def register(cli) -> None:
    cli.add("bench", "transport",
            help="640x480 rgb8 images between two nodes (two processes for dds): p50/p99 latency, "
                 "achieved rate, loss, CPU share at 30 Hz, 100 Hz and the maximum rate",
            configure=_configure, run=_run)


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", action="append", choices=["dds", "inproc", "rclpy"], default=None,
                   help="transport to measure; repeat for several (default: dds and inproc); "
                        "rclpy = two real rclpy nodes (needs a sourced ROS 2)")
    p.add_argument("--rates", default=",".join(RATES),
                   help="comma-separated publish rates in Hz, 'max' = as fast as possible "
                        "(default 30,100,max)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per rate (default 5)")
    p.add_argument("--qos", choices=["sensor", "reliable"], default="sensor",
                   help="sensor = best effort keep-last 5, what image topics use (default); "
                        "reliable = reliable keep-last 5")
    p.add_argument("--repeat", type=int, default=1,
                   help="run every backend this many times, interleaved (A B, B A, A B, ...) so "
                        "that all see the same machine load; each run is a row (default 1)")
    p.add_argument("--domain", type=int, default=None,
                   help="ROS domain for dds (default: a random one in 100..200)")
    add_json_option(p, "write the results to this JSON file", dest="json_out")


def _rates(text: str) -> List[Optional[float]]:
    out: List[Optional[float]] = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if item == "max":
            out.append(None)
            continue
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"--rates: {item!r} is neither a number of Hz nor 'max'") from None
        if not 0 < value <= 10000:
            raise ConfigError(f"--rates: {item} Hz is outside 0..10000")
        out.append(value)
    if not out:
        raise ConfigError("--rates is empty")
    return out


def _run(args: argparse.Namespace) -> int:
    # imported here: the benchmark pulls in numpy, cyclonedds and the runtime, which `effdl-ros --help` does not need
    from effdl_ros.bench.transport import HEIGHT, WIDTH, run, table

    rates = _rates(args.rates)
    if args.json_out and not os.path.isdir(os.path.dirname(os.path.abspath(args.json_out))):
        raise DataError(f"{args.json_out}: the folder {os.path.dirname(args.json_out)} does not exist")
    if args.duration <= 0:
        raise ConfigError("--duration must be positive (seconds per rate)")
    if not 1 <= args.repeat <= 100:
        raise ConfigError("--repeat must be in 1..100")
    backends = args.backend or ["dds", "inproc"]
    domain = args.domain if args.domain is not None else random.randint(100, 200)
    if not 0 <= domain <= 232:
        raise ConfigError(f"--domain {domain} is outside 0..232")
    out = run(backends, rates, duration=args.duration, qos=args.qos, repeat=args.repeat, domain=domain)
    load = out["load_average_1min"]
    title = (f"transport: {WIDTH}x{HEIGHT} rgb8 Image, QoS {args.qos}, {args.duration:g} s per rate "
             f"- {out['machine']}; load average {load[0]:.1f} -> {load[1]:.1f}")
    console = Console(width=max(110, Console().width))
    console.print(table(out["results"], title))
    if args.repeat > 1:
        for backend, by_rate in out["medians"].items():
            for rate, m in by_rate.items():
                console.print(f"{backend} {rate} Hz over {m['runs']} runs: median p50 "
                              f"{m['p50_median']:.2f} ms, median p99 {m['p99_median']:.2f} ms, "
                              f"worst p99 {m['p99_worst']:.2f} ms")
    if args.json_out:
        write_json(args.json_out, out, require_folder=True)
    return 0
