"""Exact optimal-transport domain distances (POT) as an alternative to MDDA's critic-based W_i.

MDDA (Zhao et al., AAAI 2020) weights source i by exp(-W_i^2/2), W_i being its WGAN-GP critic's
Wasserstein estimate; a critic is a trained approximation whose scale depends on its training. Here
W_i is computed directly between target features (target encoder i) and source features (source
encoder i): exact earth mover's distance ``ot.emd2`` with a Euclidean ground cost on sub-samples, or
the sliced Wasserstein distance ``ot.sliced_wasserstein_distance``. Each source has its own feature
space; by default the distance is taken in raw feature units, like the critic's W_i, so the same
weight formula exp(-W^2/2) applies. ``normalise=True`` first divides by the source features' RMS
spread (scale-free, but then every source looked alike in our runs: weights became uniform).
"""
from __future__ import annotations

import numpy as np

METHODS = ("emd", "sliced")


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(x) <= n:
        return x
    return x[rng.choice(len(x), size=n, replace=False)]


def feature_distance(source_feats, target_feats, *, method: str = "emd", n: int = 500,
                     n_projections: int = 200, seed: int = 0, normalise: bool = False) -> float:
    """Wasserstein-1 (emd) or sliced Wasserstein-2 distance between two feature clouds [N, D]."""
    import ot

    if method not in METHODS:
        raise ValueError(f"unknown OT method {method!r}; choose one of {METHODS}")
    xs = np.asarray(source_feats, dtype=np.float64)
    xt = np.asarray(target_feats, dtype=np.float64)
    if normalise:
        spread = float(np.sqrt(((xs - xs.mean(0)) ** 2).sum(1).mean())) or 1.0
        xs, xt = xs / spread, xt / spread
    rng = np.random.default_rng(seed)
    xs, xt = _subsample(xs, n, rng), _subsample(xt, n, rng)
    if method == "emd":
        cost = ot.dist(xs, xt, metric="euclidean")
        a = np.full(len(xs), 1.0 / len(xs))
        b = np.full(len(xt), 1.0 / len(xt))
        return float(ot.emd2(a, b, cost, numItermax=1_000_000))
    return float(ot.sliced_wasserstein_distance(xs, xt, n_projections=n_projections, seed=seed))
