"""`effdl-ros bench dlbench` and `effdl-ros bench compare`: DLBench timing and run-to-run ratios."""
from __future__ import annotations

import argparse
from pathlib import Path

from effdl_ros.cli.options import add_json_option, write_json


def register(cli) -> None:
    cli.add("bench", "dlbench",
            help="DLBench workloads (FCN-5, CIFAR CNN, ResNet-56, PTB LSTM): time per mini-batch, "
                 "batch sweeps, thread scaling",
            configure=_configure_dlbench, run=_run_dlbench)
    cli.add("bench", "compare",
            help="ratios B/A of two `bench dlbench --json` runs (e.g. host vs container), with spread",
            configure=_configure_compare, run=_run_compare)


def _configure_dlbench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workloads", default="dlbench",
                   help="comma-separated: fcn5, cnn, resnet56, lstm (DLBench's; 'dlbench' = these four, the "
                        "default), ddi, e2resnet, segnet, roam (effdl_ros's own; 'own' = these), or 'all'")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", default=None,
                   help="intra-op thread counts to sweep, e.g. 1,2 (default: torch's current count)")
    p.add_argument("--batch", action="append", default=[],
                   help="batch sizes, e.g. 32,64 for all workloads or fcn5:32,64 for one; repeatable "
                        "(defaults: fcn5 64, cnn 128, resnet56 32, lstm 64, ddi 32, e2resnet 32, segnet 2, "
                        "roam 4)")
    p.add_argument("--mode", default="train", choices=["train", "infer", "both"],
                   help="train = DLBench's training step (default); infer = forward only")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported (default 5)")
    p.add_argument("--steps", type=int, default=5, help="mini-batches per timed repeat (default 5)")
    p.add_argument("--energy", action="store_true",
                   help="also measure energy per sample with the first readable meter (NVML for cuda, "
                        "else RAPL, INA3221, battery); nothing is modelled here")
    add_json_option(p, "write the run to this JSON file", dest="json_out")


def _run_dlbench(args: argparse.Namespace) -> int:
    import torch

    from effdl_ros.bench import dlbench

    workloads = dlbench.expand_workloads(args.workloads)
    threads = (dlbench.parse_int_list(args.threads, "--threads") if args.threads
               else [torch.get_num_threads()])
    plan = dlbench.Plan(workloads=workloads, device=args.device, threads=threads,
                        batches=dlbench.parse_batches(args.batch),
                        modes=["train", "infer"] if args.mode == "both" else [args.mode],
                        warmup=args.warmup, repeats=args.repeats, steps=args.steps)
    meter = None
    if args.energy:
        from effdl_ros.energy.meters import detect_meter

        meter, tried = detect_meter(use_nvml=args.device == "cuda")
        if meter is None:
            print("no readable energy meter, so no energy figures: " + "; ".join(tried.values()))
        else:
            print(f"energy measured with {meter.name} (whole device)")
    env = dlbench.environment(args.device)
    print(f"dlbench on {env.get('gpu') or env['cpu']} ({args.device}), torch {env['torch']}, "
          f"{'container' if env['in_container'] else 'host'}; warm-up {plan.warmup}, median of "
          f"{plan.repeats} x {plan.steps} mini-batches")
    header = (f"{'workload':<9} {'mode':<5} {'thr':>3} {'batch':>5} {'ms/batch':>9} {'IQR ms':>15} "
              f"{'samples/s':>10}" + (f" {'mJ/sample':>10}" if meter is not None else ""))
    print(header)
    print("-" * len(header))

    def show(r) -> None:
        print(f"{r.workload:<9} {r.mode:<5} {r.threads:>3} {r.batch:>5} {r.median_ms:>9.2f} "
              f"{f'{r.q1_ms:.2f}-{r.q3_ms:.2f}':>15} {r.samples_per_s:>10.1f}"
              + (f" {r.energy_per_sample_j * 1e3:>10.3f}" if r.energy_per_sample_j is not None else ""),
              flush=True)

    run = dlbench.run_plan(plan, progress=show, meter=meter,
                           on_skip=lambda name, why: print(f"{name:<9} skipped: {why}", flush=True))
    speed = dlbench.thread_speedups(run["results"])
    if len(threads) > 1:
        print("\nthread scaling (speed-up over the fewest threads):")
        for (w, mode, batch), by_t in speed.items():
            print(f"  {w:<9} {mode:<5} batch {batch:>4}: " +
                  "  ".join(f"{t} thr x{s:.2f}" for t, s in by_t.items()))
    if args.json_out:
        write_json(args.json_out, run, require_folder=True, say=None)
        print(f"\nwrote {args.json_out}")
    return 0


def _configure_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", help="baseline run (e.g. host.json)")
    p.add_argument("b", help="other run (e.g. container.json)")
    p.add_argument("--any-device", action="store_true",
                   help="pair records that differ only by device (CPU run vs GPU run)")
    add_json_option(p, "write the ratios to this JSON file", dest="json_out")


def _run_compare(args: argparse.Namespace) -> int:
    from effdl_ros.bench import compare

    a, b = compare.load_run(Path(args.a)), compare.load_run(Path(args.b))
    ratios, only_a, only_b = compare.compare_runs(a, b, match_device=not args.any_device)
    ea, eb = a.get("environment", {}), b.get("environment", {})

    def where(e) -> str:
        if not e:
            return "?"
        return f"{'container' if e.get('in_container') else 'host'}, {e.get('gpu') or e.get('cpu', '?')}"

    print(f"A = {args.a} ({where(ea)})\nB = {args.b} ({where(eb)})")
    if not ratios:
        print("no records in common (same workload, mode, device, threads and batch)")
        return 1
    header = (f"{'workload':<9} {'mode':<5} {'device':<6} {'thr':>3} {'batch':>5} {'A ms':>9} {'B ms':>9} "
              f"{'B/A':>6} {'spread (IQR)':>14}")
    print(header)
    print("-" * len(header))
    for r in ratios:
        w, mode, dev, thr, batch = (r.key + ("*",))[:5] if len(r.key) == 5 else (r.key[0], r.key[1], "*",
                                                                                 r.key[2], r.key[3])
        mark = "" if r.distinguishable else "  (within spread)"
        print(f"{w:<9} {mode:<5} {dev:<6} {thr:>3} {batch:>5} {r.a_ms:>9.2f} {r.b_ms:>9.2f} "
              f"{r.ratio:>6.3f} {f'{r.low:.3f}-{r.high:.3f}':>14}{mark}")
    print(f"geometric mean of B/A: {compare.geometric_mean([r.ratio for r in ratios]):.3f} "
          f"over {len(ratios)} records")
    for name, keys in (("only in A", only_a), ("only in B", only_b)):
        if keys:
            print(f"{name}: " + "; ".join(" ".join(str(x) for x in k) for k in keys))
    if args.json_out:
        write_json(args.json_out, {"a": args.a, "b": args.b, "ratios": [
            {"key": list(r.key), "a_ms": r.a_ms, "b_ms": r.b_ms, "ratio": r.ratio, "low": r.low,
             "high": r.high} for r in ratios]}, require_folder=True, say=None)
    return 0
