"""The digits benchmark behind `effdl-ros bench adaptation`: every row on the same target test split.

Rows: source-only (each source; all sources merged; a uniform ensemble of the source-only models),
single-source adaptation (the ADDA-style WGAN-GP mapping from each source, MDDA's stage 2 alone) and
the best of them, MDDA with the critic's domain weights (the paper), with optimal-transport weights
(POT emd / sliced), ablations (uniform weights, no distillation), and an oracle trained on the
target's own labels. The target's training split is used unlabelled by every adaptation method; its
labels serve only the oracle. "Best single-source" is picked with the target test labels, which
flatters that baseline (as in the papers' tables).

With `equal_cost` (issue 21) two rows get MDDA's training iterations: the merged-sources network
trained for all of MDDA's stage-1 iterations (N sources x pretrain_iters), and the same network then
adapted to the target as one source (the "source-combine" baseline of the multi-source papers) for all
of MDDA's stage-2 iterations (N x adapt_iters). MDDA's distillation (N x distill_iters of a classifier
head) is not matched; it is under 1 % of its compute.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from effdl_ros.adaptation.domains import build_domains, canonical_name
from effdl_ros.adaptation.mdda import MddaConfig

DEFAULT_SOURCES = ("mnist5k", "sklearn", "opencv", "opencv-inv")
DEFAULT_TARGET = "mnistm"
#: MDDA's own figure (Zhao et al., AAAI 2020), Digit-Five leave-one-out average, recalled in
#: ../shared/REFERENCES.md and marked [verify] there: real Digit-Five, not our domains.
PAPER_DIGIT_FIVE_AVERAGE = 88.1
GOAL_POINTS = 3.0


@dataclass
class DigitsBenchResult:
    sources: List[str]
    target: str
    rows: List[dict]
    distances: Dict[str, dict]
    goal: dict
    config: dict
    wall_s: float
    sizes: Dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"task": "digits", "sources": self.sources, "target": self.target, "rows": self.rows,
                "distances": self.distances, "goal": self.goal, "config": self.config,
                "domain_sizes": self.sizes, "wall_s": self.wall_s,
                "paper": {"mdda_digit_five_average": PAPER_DIGIT_FIVE_AVERAGE,
                          "note": "real Digit-Five; ours are real digits under synthetic shifts"}}


def run_digits_benchmark(sources: Sequence[str] = DEFAULT_SOURCES, target: str = DEFAULT_TARGET, *,
                         cfg: Optional[MddaConfig] = None, seed: int = 0,
                         max_per_domain: Optional[int] = None, save_model: Optional[str] = None,
                         equal_cost: bool = False, log: Optional[Callable[[str], None]] = None) -> DigitsBenchResult:
    """Train everything once and evaluate every row on the target's test split."""
    import torch

    from effdl_ros.adaptation import mdda
    from effdl_ros.adaptation.ot_distance import feature_distance

    cfg = cfg or MddaConfig(seed=seed)
    t0 = time.perf_counter()
    say = log or (lambda _msg: None)
    src_names = [canonical_name(s) for s in sources]
    tgt_name = canonical_name(target)
    if tgt_name in src_names:
        from effdl_ros.errors import ConfigError

        raise ConfigError(f"target domain {target!r} is also listed as a source")
    domains = build_domains([*src_names, tgt_name], seed=seed, max_per_domain=max_per_domain)
    tgt = domains.pop(tgt_name)
    say("domains: " + ", ".join(repr(d) for d in [*domains.values(), tgt]))
    rows: List[dict] = []

    def row(method: str, logits, *, kind: str, train_s: float = 0.0, **extra) -> dict:
        r = {"method": method, "kind": kind, "accuracy": round(mdda.accuracy(logits, tgt.test_y), 4),
             "train_s": round(train_s, 1), **extra}
        rows.append(r)
        say(f"  -> {method}: {100 * r['accuracy']:.1f} %")
        return r

    t = time.perf_counter()
    runs = mdda.train_sources(domains, tgt.train_x, cfg, log=say)
    t_sources = time.perf_counter() - t

    # Source-only and single-source adaptation rows (all from MDDA's per-source runs).
    so_logits = []
    for run in runs:
        lg = mdda.predict_logits(run.source_model, tgt.test_x)
        so_logits.append(lg)
        row(f"source-only: {run.name}", lg, kind="source-only")
    say(f"  source-only on merged sources ({cfg.pretrain_iters} it)")
    t = time.perf_counter()
    merged_x = np.concatenate([d.train_x for d in domains.values()])
    merged_y = np.concatenate([d.train_y for d in domains.values()])
    merged = mdda.pretrain(merged_x, merged_y, cfg, seed=seed + 7)
    row("source-only: all sources merged", mdda.predict_logits(merged, tgt.test_x), kind="source-only",
        train_s=time.perf_counter() - t)
    row("source-only: uniform ensemble", torch.stack(so_logits).mean(0), kind="source-only")
    single = []
    for run in runs:
        adapted_src = torch.nn.Sequential(run.adapted.target_encoder, run.source_model.classifier)
        single.append(row(f"single-source adaptation: {run.name}",
                          mdda.predict_logits(adapted_src, tgt.test_x), kind="single-source"))
    best = max(single, key=lambda r: r["accuracy"])
    rows.append({**best, "method": f"best single-source adaptation ({best['method'].split(': ')[1]})",
                 "kind": "best-single-source"})

    # Domain distances: the critic's W_i (paper) and exact OT on the same features.
    distances: Dict[str, dict] = {}
    for run in runs:
        fs, ft = run.source_feats.numpy(), run.target_feats.numpy()
        distances[run.name] = {
            "critic_w": round(run.critic_distance, 4),
            "ot_emd": round(feature_distance(fs, ft, method="emd", seed=seed, normalise=False), 4),
            "ot_sliced": round(feature_distance(fs, ft, method="sliced", seed=seed, normalise=False), 4),
            "ot_emd_normalised": round(feature_distance(fs, ft, method="emd", seed=seed, normalise=True), 4),
            "n_distilled": run.n_distilled,
        }
    weightings = {
        "critic": mdda.domain_weights([distances[r.name]["critic_w"] for r in runs]),
        "ot_emd": mdda.domain_weights([distances[r.name]["ot_emd"] for r in runs]),
        "ot_sliced": mdda.domain_weights([distances[r.name]["ot_sliced"] for r in runs]),
        "uniform": np.full(len(runs), 1.0 / len(runs)),
    }
    for name, w in weightings.items():
        for run, wi in zip(runs, w):
            distances[run.name][f"weight_{name}"] = round(float(wi), 4)
    labels = {"critic": "MDDA multi-source (critic weights, paper)",
              "ot_emd": "MDDA multi-source (OT weights, exact emd2)",
              "ot_sliced": "MDDA multi-source (OT weights, sliced)",
              "uniform": "MDDA multi-source (uniform weights, ablation)"}
    for name, w in weightings.items():
        model = mdda.assemble(runs, w, cfg.sizes)
        r = row(labels[name], mdda.predict_logits(model, tgt.test_x), kind="multi-source",
                train_s=t_sources, weights=[round(float(x), 4) for x in w])
        if name == "critic" and save_model:
            from effdl_ros.adaptation.nets import encoder_macs

            mdda.save_model(model, save_model, {
                "sources": src_names, "target": tgt_name, "weighting": "critic",
                "distances": [distances[x.name]["critic_w"] for x in runs],
                "target_test_accuracy": r["accuracy"], "mdda_config": cfg.to_dict(),
                "macs_per_image": encoder_macs(cfg.sizes) * len(runs)})
            say(f"  wrote {save_model}")
    model = mdda.assemble(runs, weightings["critic"], cfg.sizes, distilled=False)
    row("MDDA multi-source (critic weights, no distillation, ablation)",
        mdda.predict_logits(model, tgt.test_x), kind="multi-source")

    equal_rows = _equal_cost_rows(merged_x, merged_y, tgt.train_x, tgt.test_x, cfg, len(runs), seed, row,
                                  say) if equal_cost else []

    say(f"  oracle on the target's own labels ({cfg.pretrain_iters} it)")
    t = time.perf_counter()
    oracle = mdda.pretrain(tgt.train_x, tgt.train_y, cfg, seed=seed + 11)
    row("oracle: trained on target labels", mdda.predict_logits(oracle, tgt.test_x), kind="oracle",
        train_s=time.perf_counter() - t)

    acc = {r["method"]: r["accuracy"] for r in rows}
    multi = acc[labels["critic"]]
    margin = 100 * (multi - best["accuracy"])
    goal = {"multi_source": multi, "best_single_source": best["accuracy"],
            "margin_points": round(margin, 2), "goal_points": GOAL_POINTS,
            "met": bool(margin >= GOAL_POINTS),
            "best_multi_source": max(acc[v] for v in labels.values())}
    if equal_rows:
        strongest = max(equal_rows, key=lambda r: r["accuracy"])
        goal["equal_cost_baseline"] = strongest["method"]
        goal["margin_over_equal_cost_points"] = round(100 * (multi - strongest["accuracy"]), 2)
    sizes = {n: {"train": int(len(d.train_y)), "test": int(len(d.test_y))}
             for n, d in [*domains.items(), (tgt_name, tgt)]}
    return DigitsBenchResult(src_names, tgt_name, rows, distances, goal, cfg.to_dict(),
                             round(time.perf_counter() - t0, 1), sizes)


def _equal_cost_rows(merged_x: np.ndarray, merged_y: np.ndarray, target_train_x: np.ndarray,
                     target_test_x: np.ndarray, cfg: MddaConfig, n_sources: int, seed: int, row: Callable,
                     say: Callable[[str], None]) -> List[dict]:
    """The merged-sources network with MDDA's stage-1 iterations, then adapted with its stage-2 iterations."""
    import torch

    from effdl_ros.adaptation import mdda

    big = replace(cfg, pretrain_iters=n_sources * cfg.pretrain_iters, adapt_iters=n_sources * cfg.adapt_iters)
    say(f"  equal cost: merged sources, {big.pretrain_iters} it, then adapted as one source, {big.adapt_iters} it")
    t = time.perf_counter()
    net = mdda.pretrain(merged_x, merged_y, big, seed=seed + 7)
    rows = [row(f"equal cost: all sources merged ({big.pretrain_iters} it)", mdda.predict_logits(net, target_test_x),
                kind="equal-cost", train_s=time.perf_counter() - t)]
    adapted = mdda.adapt(net.encoder, merged_x, target_train_x, big, seed=seed + 13, log=say)
    combined = torch.nn.Sequential(adapted.target_encoder, net.classifier)
    rows.append(row(f"equal cost: merged, then adapted as one source ({big.pretrain_iters}+{big.adapt_iters} it)",
                    mdda.predict_logits(combined, target_test_x), kind="equal-cost",
                    train_s=time.perf_counter() - t))
    return rows
