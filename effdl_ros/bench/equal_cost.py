"""Equal-cost rows for `bench e2train` and `bench eb` (issue 21), over several seeds in one run.

Each method's row is put beside the strongest simple baseline that spends the same training compute:
plain training with the normal recipe, its schedule shortened to the method's executed MACs (and so
its modelled fp32 energy; for PSG rows a second baseline gets the method's modelled joules, which buy
more fp32 MACs), lr decayed linearly to zero (training/budgeted.py; Li et al., ICLR 2020). Early-Bird
also meets a small dense net of the ticket's inference size trained from scratch with the ticket's
whole training energy (search included).

Measured: accuracy, executed MACs (counted), wall time. Modelled: energy (MACs x pJ per MAC).
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

from effdl_ros.bench.training import bench_e2train, bench_eb
from effdl_ros.training.budgeted import budgeted_fit, macs_for_energy
from effdl_ros.training.e2train import E2TrainConfig, evaluate
from effdl_ros.training.experiments import load_data, make_config, parse_arch
from effdl_ros.training.macs import inference_macs
from effdl_ros.training.resnet import build, count_parameters

Progress = Optional[Callable[[str], None]]


def _ms(values: Sequence[float]):
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _budget_row(data, arch: str, target_macs: float, seed: int, *, lr: float, batch_size: int) -> dict:
    torch.manual_seed(seed)
    model = build(make_config(arch, data))
    r = budgeted_fit(model, data.x_train, data.y_train, target_macs=target_macs,
                     config=E2TrainConfig(lr=lr, batch_size=batch_size, seed=seed))
    return {"accuracy": evaluate(model, data.x_test, data.y_test)[0], "executed_train_macs": r.executed_train_macs,
            "modelled_energy_j": r.modelled_energy_j, "wall_s": r.wall_s, "iterations": r.iterations,
            "target_macs": r.target_macs, "inference_macs": inference_macs(model, data.x_test[:64]),
            "parameters": count_parameters(model), "final_lr_scale": r.final_lr_scale}


def _aggregate(per_seed: Dict[str, List[dict]], kinds: Dict[str, str], matched: Dict[str, str],
               macs_key: str) -> List[dict]:
    rows = []
    for name, rs in per_seed.items():
        acc, acc_sd = _ms([r["accuracy"] for r in rs])
        rows.append({"row": name, "kind": kinds[name], "matched_to": matched.get(name),
                     "accuracy": acc, "accuracy_std": acc_sd,
                     "per_seed_accuracy": [r["accuracy"] for r in rs],
                     "executed_train_macs": statistics.fmean(r[macs_key] for r in rs),
                     "modelled_energy_j": statistics.fmean(r["modelled_energy_j"] for r in rs),
                     "wall_s": statistics.fmean(r["wall_s"] for r in rs),
                     "inference_macs": statistics.fmean(r["inference_macs"] for r in rs),
                     "per_seed": rs})
    return rows


def verdicts(rows: List[dict]) -> List[dict]:
    """Method minus its equal-cost baseline, in points, with the larger of the two seed spreads."""
    by = {r["row"]: r for r in rows}
    out = []
    for r in rows:
        if r["kind"] != "baseline" or not r["matched_to"]:
            continue
        m = by[r["matched_to"]]
        diffs = [100 * (a - b) for a, b in zip(m["per_seed_accuracy"], r["per_seed_accuracy"])]
        d, d_sd = _ms(diffs)
        spread = 100 * max(m["accuracy_std"], r["accuracy_std"])
        out.append({"method": m["row"], "baseline": r["row"], "difference_points": d,
                    "difference_std_points": d_sd, "seed_spread_points": spread,
                    "verdict": "ahead" if d > spread and d > d_sd else
                               "behind" if -d > spread and -d > d_sd else "tie (within seed spread)"})
    return out


def e2train_equal_cost(name: str, *, arch: str, epochs: int, seeds: Sequence[int],
                       variants: Sequence[str], batch_size: int = 128, progress: Progress = None,
                       **e2_kwargs) -> dict:
    """`bench e2train` per seed, then one budget-matched plain run per method row (two for PSG)."""
    data = load_data(name)
    per: Dict[str, List[dict]] = {}
    kinds: Dict[str, str] = {}
    matched: Dict[str, str] = {}
    t0 = time.perf_counter()
    for seed in seeds:
        res = bench_e2train([name], arch=arch, epochs={name: epochs}, seed=seed, variants=variants,
                            batch_size=batch_size, progress=progress, **e2_kwargs)
        block = res["results"][name]["variants"]
        for v, r in block.items():
            per.setdefault(v, []).append(r)
            kinds[v] = "method" if v != "full" else "reference"
        for v, r in block.items():
            if v == "full":
                continue
            targets = {f"budget-matched: MACs of {v}": r["executed_train_macs"]}
            if "PSG" in v:
                targets[f"budget-matched: energy of {v}"] = macs_for_energy(r["modelled_energy_j"])
            for label, macs in targets.items():
                if progress:
                    progress(f"{name} seed {seed}: {label}")
                per.setdefault(label, []).append(_budget_row(data, arch, macs, seed, lr=0.1,
                                                             batch_size=batch_size))
                kinds[label], matched[label] = "baseline", v
        if progress:
            progress(f"{name} seed {seed} done ({time.perf_counter() - t0:.0f} s)")
    rows = _aggregate(per, kinds, matched, "executed_train_macs")
    return {"bench": "e2train", "data": name, "arch": arch, "epochs": epochs, "seeds": list(seeds),
            "batch_size": batch_size, "settings": e2_kwargs, "torch_threads": torch.get_num_threads(),
            "rows": rows, "verdicts": verdicts(rows)}


def small_dense_arch(arch: str, data, target_inference_macs: float) -> str:
    """resnetD:W with the same depth and the width whose inference MACs are nearest the ticket's."""
    n, w = parse_arch(arch)
    depth = 6 * n + 2
    best = None
    for width in range(2, w + 1):
        spec = f"resnet{depth}:{width}"
        macs = inference_macs(build(make_config(spec, data)), data.x_test[:4])
        if best is None or abs(macs - target_inference_macs) < best[0]:
            best = (abs(macs - target_inference_macs), spec)
    return best[1]


def eb_equal_cost(name: str, *, arch: str, epochs: int, seeds: Sequence[int], ratio: float = 0.5,
                  epsilon: float = 0.1, progress: Progress = None) -> dict:
    """`bench eb` per seed, then plain dense and a small dense net, both at EB (continue)'s energy."""
    data = load_data(name)
    per: Dict[str, List[dict]] = {}
    kinds: Dict[str, str] = {}
    matched: Dict[str, str] = {}
    tickets = []
    t0 = time.perf_counter()
    small = None
    for seed in seeds:
        res = bench_eb([name], arch=arch, epochs={name: epochs}, ratio=ratio, epsilon=epsilon, seed=seed,
                       progress=progress)
        block = res["results"][name]
        tickets.append(block["ticket_epoch"])
        for v, r in block["variants"].items():
            per.setdefault(v, []).append(r)
            kinds[v] = "method" if v.startswith("EB") else "reference"
        eb = block["variants"].get("EB (continue)")
        if eb is None:
            if progress:
                progress(f"{name} seed {seed}: no ticket, no equal-cost rows")
            continue
        small = small_dense_arch(arch, data, eb["inference_macs"])
        for label, spec in ((f"budget-matched dense {arch}: energy of EB (continue)", arch),
                            (f"small dense {small} from scratch: energy of EB (continue)", small)):
            if progress:
                progress(f"{name} seed {seed}: {label}")
            r = _budget_row(data, spec, eb["train_macs"], seed, lr=0.1, batch_size=64)
            r["train_macs"] = r["executed_train_macs"]
            per.setdefault(label, []).append(r)
            kinds[label], matched[label] = "baseline", "EB (continue)"
        if progress:
            progress(f"{name} seed {seed} done ({time.perf_counter() - t0:.0f} s)")
    rows = _aggregate(per, kinds, matched, "train_macs")
    return {"bench": "eb", "data": name, "arch": arch, "epochs": epochs, "ratio": ratio, "epsilon": epsilon,
            "seeds": list(seeds), "ticket_epochs": tickets, "small_dense_arch": small,
            "torch_threads": torch.get_num_threads(), "rows": rows, "verdicts": verdicts(rows)}


def format_table(res: dict) -> str:
    head = (f"{'row':58} {'top-1 %':>14} {'train GMAC':>10} {'energy J*':>9} {'inf MMAC':>8} {'wall s':>7}")
    lines = [f"{res['bench']} on {res['data']}, {res['arch']}, {res['epochs']}-epoch reference schedule, "
             f"seeds {res['seeds']}", head, "-" * len(head)]
    for r in res["rows"]:
        lines.append(f"{r['row'][:58]:58} {100 * r['accuracy']:7.2f} ± {100 * r['accuracy_std']:4.2f} "
                     f"{r['executed_train_macs'] / 1e9:10.2f} {r['modelled_energy_j']:9.4f} "
                     f"{r['inference_macs'] / 1e6:8.3f} {r['wall_s']:7.1f}")
    for v in res["verdicts"]:
        lines.append(f"{v['method']} vs {v['baseline']}: {v['difference_points']:+.2f} ± "
                     f"{v['difference_std_points']:.2f} pt (seed spread {v['seed_spread_points']:.2f}) "
                     f"-> {v['verdict']}")
    lines.append("measured: top-1 (mean ± std over seeds), executed MACs, wall time; * modelled: energy "
                 "(fp32 4.6 pJ/MAC; PSG 8/4/16 bit, Horowitz ISSCC 2014); budget-matched = plain "
                 "training, lr linear to 0 at the budget (Li et al., ICLR 2020)")
    return "\n".join(lines)
