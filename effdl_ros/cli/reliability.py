"""`effdl-ros fuzz`, `effdl-ros soak`, `effdl-ros bench save-kill` and `effdl-ros bench respawn`
(issue 10: reliability under bad input, faults and load)."""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

from effdl_ros.cli.options import add_json_option, write_json
from effdl_ros.errors import ConfigError


def register(cli) -> None:
    cli.add(None, "fuzz", help="send lying messages to every subscription of a node; count crashes and drops",
            configure=_configure_fuzz, run=_run_fuzz)
    cli.add(None, "soak", help="run a graph at N x its input rate: RSS growth, p99 latency, drops, queue bounds",
            configure=_configure_soak, run=_run_soak)
    cli.add("bench", "save-kill", help="kill -9 checkpoint writers: atomic save vs a plain torch.save",
            configure=_configure_save_kill, run=_run_save_kill)
    cli.add("bench", "respawn", help="kill -9 each node of a supervised dds graph in turn: restarts and survivors",
            configure=_configure_respawn, run=_run_respawn)



def _f(v: float, digits: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}g}"


# ---------------------------------------------------------------------------------------------- fuzz

def _configure_fuzz(p: argparse.ArgumentParser) -> None:
    p.add_argument("node", help="node executable (ddi, segmentation, trainer, ...) or 'all'")
    p.add_argument("--count", type=int, default=10000, help="lying messages per subscribed topic (default 10000)")
    p.add_argument("--backend", choices=("inproc", "dds"), default="inproc",
                   help="inproc: node and fuzzer in one executor; dds: the node in its own process over DDS")
    p.add_argument("--config", default=None, help="pipeline YAML whose parameters the node starts with")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pace", type=float, default=0.001, help="dds only: seconds between messages (default 0.001)")
    add_json_option(p, "write the results here")


def _run_fuzz(args: argparse.Namespace) -> int:
    from effdl_ros.runtime import backend

    if args.count < 1:
        raise ConfigError(f"--count must be >= 1, got {args.count}")
    from effdl_ros.nodes import executables

    names = sorted(executables()) if args.node == "all" else [args.node]
    unknown = [n for n in names if n not in executables()]
    if unknown:
        raise ConfigError(f"unknown node {unknown[0]!r}; known: {', '.join(sorted(executables()))}, all")
    backend.select("inproc" if args.backend == "inproc" else "dds")
    import torch

    torch.set_num_threads(1)
    from effdl_ros.graph.fuzz import fuzz_dds, fuzz_inproc

    params = {}
    if args.config:
        from effdl_ros.graph.launch import load_pipeline

        params = {s.executable: s.parameters for s in load_pipeline(args.config).nodes}
    reports = []
    for name in names:
        print(f"fuzzing {name} ({args.backend}, {args.count} messages per topic) ...", file=sys.stderr, flush=True)
        run = fuzz_inproc if args.backend == "inproc" else fuzz_dds
        kwargs = dict(count=args.count, seed=args.seed, pipeline_parameters=params.get(name))
        if args.backend == "dds":
            kwargs["pace_sec"] = args.pace
        reports.append(run(name, **kwargs))
    _print_fuzz(reports)
    if args.json:
        write_json(args.json, {"backend": args.backend, "count": args.count, "seed": args.seed,
                                "nodes": [r.to_dict() for r in reports]})
    return 0 if all(r.ok for r in reports) else 1


def _print_fuzz(reports) -> None:
    print(f"\n{'node':<16} {'topic':<26} {'type':<34} {'kinds':>5} {'sent':>7} {'crashes':>7} "
          f"{'dropped':>7} {'s':>6}  drops by kind")
    for r in reports:
        if not r.started:
            print(f"{r.node:<16} NOT STARTED: {r.error}")
            continue
        if not r.topics:
            print(f"{r.node:<16} (no subscriptions)")
        for t in r.topics:
            kinds = ", ".join(f"{k}={v}" for k, v in sorted(t.drops.items())) or "-"
            print(f"{r.node:<16} {t.topic:<26} {t.typename:<34} {t.kinds:>5} {t.sent:>7} {t.crashes:>7} "
                  f"{t.dropped:>7} {t.seconds:>6.1f}  {kinds}")
            for e in t.crash_errors:
                print(f"{'':<16}   crash: {e}")
    print(f"\n{'node':<16} {'sent':>8} {'crashes':>7} {'log lines':>9} {'diagnostics':>11} {'model kept':>10} "
          f"{'pickle ran':>10}  after fuzzing")
    for r in reports:
        if r.started:
            print(f"{r.node:<16} {sum(t.sent for t in r.topics):>8} {r.crashes:>7} {r.log_lines:>9} "
                  f"{'yes' if r.diagnostics_seen else 'no':>11} "
                  f"{'-' if r.model_kept is None else ('yes' if r.model_kept else 'NO'):>10} "
                  f"{'YES' if r.pickle_executed else 'no':>10}  {r.probe}")


# ---------------------------------------------------------------------------------------------- soak

def _configure_soak(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default=None,
                   help="pipeline YAML with a source node (default: a self-contained graph of source, ddi and "
                        "segmentation on tiny random-weight models, synthetic_load and energy_monitor)")
    p.add_argument("--rate-factor", type=float, default=2.0, help="source rate x this (default 2)")
    p.add_argument("--duration", type=float, default=1800.0, help="seconds (default 1800)")
    p.add_argument("--warmup", type=float, default=None, help="seconds before the RSS baseline (default 10%%, >= 5 s)")
    p.add_argument("--max-growth", type=float, default=5.0, help="RSS growth goal after warm-up, %% (default 5)")
    add_json_option(p, "write the results (with the RSS series) here")


def _run_soak(args: argparse.Namespace) -> int:
    from effdl_ros.runtime import backend

    backend.select("inproc")
    import torch

    torch.set_num_threads(1)
    from effdl_ros.graph.soak import run_soak, write_soak_pipeline

    with tempfile.TemporaryDirectory(prefix="effdl_soak_") as tmp:
        config = args.config or write_soak_pipeline(Path(tmp) / "soak.yaml", Path(tmp))

        def progress(elapsed, rss):
            if int(elapsed) % 60 == 0:
                print(f"  {elapsed:7.0f} s  RSS {rss:8.1f} MB", file=sys.stderr, flush=True)

        report = run_soak(config, rate_factor=args.rate_factor, duration_s=args.duration, warmup_s=args.warmup,
                          progress=progress)
    print(f"\nsoak of {args.config or 'the self-contained graph'}: {report.duration_s:.0f} s, source at "
          f"{report.driven_hz:g} Hz ({report.rate_factor:g} x {report.nominal_hz:g} Hz), "
          f"{report.frames_published} frames")
    print(f"RSS after {report.warmup_s:.0f} s warm-up {_f(report.rss_after_warmup_mb, 5)} MB, at the end "
          f"{_f(report.rss_end_mb, 5)} MB: growth {_f(report.rss_growth_pct)} % "
          f"(trend {_f(report.rss_slope_mb_per_h)} MB/h); goal < {args.max_growth:g} %")
    period = 1000.0 / report.driven_hz
    print(f"\n{'node':<18} {'callbacks':>9} {'frames':>7} {'lost in queue':>13} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'p99 ok':>7} {'queue max/bound':>15}  drops")
    for n in report.nodes:
        limit = min(period, n.deadline_ms) if n.image_callbacks else n.deadline_ms
        ok = "-" if not math.isfinite(limit) or not math.isfinite(n.p99_ms) else ("yes" if n.p99_ms <= limit else "NO")
        drops = ", ".join(f"{k}={v}" for k, v in sorted(n.drops.items())) or "-"
        print(f"{n.name:<18} {n.callbacks:>9} {n.image_callbacks:>7} {n.frames_lost_in_queue:>13} {_f(n.p50_ms):>8} "
              f"{_f(n.p99_ms):>8} {_f(n.max_ms):>8} {ok:>7} {n.max_queue:>7}/{n.queue_bound if n.queue_bound else '-':<7}  {drops}")
    for topic, v in report.e2e_p99_ms.items():
        print(f"end-to-end p99 {topic}: {v:.1f} ms (header stamp to the observer)")
    print(f"queues bounded: {'yes' if report.queues_bounded else 'NO'}; p99 ok = p99 callback time within the "
          f"frame period ({period:.1f} ms) and the node's budget deadline")
    if args.json:
        write_json(args.json, report.to_dict())
    grew = math.isfinite(report.rss_growth_pct) and report.rss_growth_pct >= args.max_growth
    return 1 if grew or not report.queues_bounded else 0


# ---------------------------------------------------------------------------------------------- save-kill

def _configure_save_kill(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trials", type=int, default=100, help="kills per method (default 100)")
    p.add_argument("--max-delay", type=float, default=0.25, help="kill after uniform(0.01, this) s (default 0.25)")
    p.add_argument("--seed", type=int, default=0)
    add_json_option(p)


def _run_save_kill(args: argparse.Namespace) -> int:
    from effdl_ros.graph.savekill import compare

    if args.trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {args.trials}")
    with tempfile.TemporaryDirectory(prefix="effdl_savekill_") as tmp:
        results = compare(args.trials, Path(tmp), seed=args.seed, max_delay_s=args.max_delay)
    print(f"\n{'method':<44} {'kills':>6} {'mid-write':>9} {'loadable':>8} {'unloadable':>10} "
          f"{'temp files left':>15} {'file MB':>7} {'s':>6}")
    names = {"atomic": "atomic (trainer's save: tmp+fsync+rename)", "naive": "baseline: torch.save onto the path"}
    for r in results:
        print(f"{names.get(r.method, r.method):<44.44} {r.trials:>6} {r.mid_write:>9} {r.loadable:>8} {r.unloadable:>10} "
              f"{r.leftover_temp_files:>15} {r.file_bytes / 2**20:>7.2f} {r.seconds:>6.1f}")
        for e in r.errors:
            print(f"    e.g. {e}")
    if args.json:
        write_json(args.json, {"trials": args.trials, "results": [dict(r.__dict__) for r in results]})
    atomic = [r for r in results if r.method == "atomic"]
    return 0 if atomic and atomic[0].unloadable == 0 else 1


# ---------------------------------------------------------------------------------------------- respawn

def _configure_respawn(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default=None,
                   help="pipeline YAML (default: energy_monitor + two synthetic loads, all with respawn)")
    p.add_argument("--rounds", type=int, default=1, help="times each node is killed (default 1)")
    add_json_option(p)


def _run_respawn(args: argparse.Namespace) -> int:
    from effdl_ros.graph.respawn import kill_rounds, write_respawn_pipeline

    with tempfile.TemporaryDirectory(prefix="effdl_respawn_") as tmp:
        config = args.config or write_respawn_pipeline(Path(tmp) / "respawn.yaml")
        result = kill_rounds(config, rounds=args.rounds, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"\n{'killed':<18} {'restarted':>9} {'restart s':>9} {'rejoined s':>10} {'budget s':>8} "
          f"{'others alive':>12}  diagnostics named it")
    for k in result.kills:
        print(f"{k.node:<18} {'yes' if k.restarted else 'NO':>9} {_f(k.restart_s):>9} {_f(k.rejoin_s):>10} "
              f"{_f(k.budget_s):>8} {'yes' if k.others_alive else 'NO':>12}  {k.diagnostics}")
    print(f"kills survived: {result.survived}/{len(result.kills)}")
    if args.json:
        write_json(args.json, {"kills": [dict(k.__dict__) for k in result.kills], "survived": result.survived})
    return 0 if result.survived == len(result.kills) else 1
