"""Compare two benchmark runs (e.g. host vs container, CPU vs GPU): per-mini-batch time ratios.

The Docker-overhead study (Xu, Shi, Chu, arXiv 1711.03386) runs identical code and configuration on the
host and in a container and reports the ratio of per-mini-batch times. We pair the records of two
JSON runs by (workload, mode, device, threads, batch), give ratio = B / A of the medians (> 1: B is
slower), and a spread interval from the quartiles: [B.q1 / A.q3, B.q3 / A.q1]. An interval that
contains 1.0 means the two runs are not told apart by these repeats.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from effdl_ros.errors import DataError

KEY_FIELDS = ("workload", "mode", "device", "threads", "batch")
NEEDED = KEY_FIELDS + ("median_ms",)


@dataclass
class Ratio:
    key: Tuple
    a_ms: float
    b_ms: float
    ratio: float
    low: float
    high: float

    @property
    def distinguishable(self) -> bool:
        return not (self.low <= 1.0 <= self.high)


def load_run(path: Path) -> Dict[str, object]:
    """A run written by `bench dlbench --json`; malformed files give one DataError naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise DataError(f"cannot read benchmark run {path}: {err.strerror or err}") from None
    try:
        run = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(run, dict) or not isinstance(run.get("results"), list):
        raise DataError(f"{path} is not a benchmark run: it has no 'results' list")
    for i, r in enumerate(run["results"]):
        missing = [k for k in NEEDED if not isinstance(r, dict) or k not in r]
        if missing:
            raise DataError(f"{path}: result {i} lacks {', '.join(missing)}")
        try:
            float(r["median_ms"])
        except (TypeError, ValueError):
            raise DataError(f"{path}: result {i} has a non-numeric median_ms {r['median_ms']!r}") from None
    return run


def _key(r: Dict[str, object]) -> Tuple:
    return tuple(int(r[k]) if k in ("threads", "batch") else str(r[k]) for k in KEY_FIELDS)


def _q(r: Dict[str, object], name: str) -> float:
    value = r.get(name)
    return float(value) if value is not None else float(r["median_ms"])


def compare_runs(a: Dict[str, object], b: Dict[str, object], *, match_device: bool = True
                 ) -> Tuple[List[Ratio], List[Tuple], List[Tuple]]:
    """(ratios for keys in both, keys only in A, keys only in B).

    match_device=False pairs records that differ only by device (a CPU run vs a GPU run).
    """
    def index(run):
        out = {}
        for r in run["results"]:
            k = _key(r)
            if not match_device:
                k = k[:2] + k[3:]
            out[k] = r
        return out

    ia, ib = index(a), index(b)
    ratios = []
    for k in [k for k in ia if k in ib]:
        ra, rb = ia[k], ib[k]
        am, bm = float(ra["median_ms"]), float(rb["median_ms"])
        if am <= 0:
            continue
        low = _q(rb, "q1_ms") / max(_q(ra, "q3_ms"), 1e-12)
        high = _q(rb, "q3_ms") / max(_q(ra, "q1_ms"), 1e-12)
        ratios.append(Ratio(k, am, bm, bm / am, low, high))
    return ratios, [k for k in ia if k not in ib], [k for k in ib if k not in ia]


def geometric_mean(values: Sequence[float]) -> float:
    vals = [v for v in values if v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else float("nan")
