"""DLBench-style benchmark: wall time per mini-batch of a training step, data feed included.

Re-implements the method of DLBench (Shi, Wang, Xu, Chu, "Benchmarking State-of-the-Art Deep Learning
Software Tools", arXiv 1608.07249): the workloads FCN-5 (784-2048-4096-1024-10, sigmoid), an
AlexNet-style CIFAR-10 CNN, ResNet-56 on CIFAR-10 and an LSTM language model on PTB-shaped data, on
synthetic data of their shapes; the metric is the average wall time per mini-batch with the data feed
included, swept over batch sizes and CPU thread counts (intra-op threads). We take the median of
several repeats after warm-up and keep the spread, so that two runs (e.g. host vs container, as in Xu,
Shi, Chu, arXiv 1711.03386) can be compared with `compare.py`.

A step here = take the next synthetic batch from host memory, move it to the device and convert it
(the data feed), forward, loss, backward, SGD update; on CUDA the step ends with a synchronise.
"""
from __future__ import annotations

import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from effdl_ros.bench.workload import Workload
from effdl_ros.errors import ConfigError

#: DLBench-like default batch sizes (the paper sweeps FCN 32-4096 and ResNet 8-256).
DEFAULT_BATCH = {"fcn5": 64, "cnn": 128, "resnet56": 32, "lstm": 64}
WORKLOADS = tuple(DEFAULT_BATCH)
#: PTB LSTM shape (Zaremba et al.'s "small" configuration): vocabulary, sequence, hidden, layers.
PTB_VOCAB, PTB_STEPS, PTB_HIDDEN, PTB_LAYERS = 10000, 20, 200, 2


# ----------------------------------------------------------------------------------------------------
# Models (built inside functions so that importing this module does not import torch)


def build_fcn5():
    """FCN-5: 784-2048-4096-1024-10, sigmoid hidden units (DLBench's fully connected network)."""
    import torch.nn as nn

    return nn.Sequential(nn.Linear(784, 2048), nn.Sigmoid(), nn.Linear(2048, 4096), nn.Sigmoid(),
                         nn.Linear(4096, 1024), nn.Sigmoid(), nn.Linear(1024, 10))


def build_cifar_cnn():
    """AlexNet-style CIFAR-10 CNN: three 5x5 conv layers (32, 32, 64) with pooling and one FC layer."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(3, 2, padding=1), nn.ReLU(inplace=True),
        nn.LocalResponseNorm(3),
        nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(inplace=True), nn.AvgPool2d(3, 2, padding=1),
        nn.LocalResponseNorm(3),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(inplace=True), nn.AvgPool2d(3, 2, padding=1),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 10))


def build_resnet(depth: int = 56):
    """CIFAR ResNet (He et al.): 3 stages of (depth-2)/6 BasicBlocks, 16/32/64 channels."""
    import torch.nn as nn

    if (depth - 2) % 6:
        raise ConfigError(f"CIFAR ResNet depth {depth} is not 6n+2")
    n = (depth - 2) // 6

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.act(self.body(x) + self.short(x))

    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)]
    cin = 16
    for i, cout in enumerate((16, 32, 64)):
        for j in range(n):
            layers.append(Block(cin, cout, 2 if (i > 0 and j == 0) else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def build_lstm():
    """PTB language model: embedding, 2-layer LSTM (hidden 200), linear decoder to 10,000 words."""
    import torch.nn as nn

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(PTB_VOCAB, PTB_HIDDEN)
            self.rnn = nn.LSTM(PTB_HIDDEN, PTB_HIDDEN, PTB_LAYERS, batch_first=True)
            self.decode = nn.Linear(PTB_HIDDEN, PTB_VOCAB)

        def forward(self, tokens):
            out, _ = self.rnn(self.embed(tokens))
            return self.decode(out)

    return LM()


# ----------------------------------------------------------------------------------------------------
# Synthetic data of the workloads' shapes; stored as the raw data would be (uint8 pixels, int64 tokens)


def make_workload(name: str, batch: int, *, pool_size: int = 4, seed: int = 0) -> Workload:
    import torch
    import torch.nn.functional as F

    if batch < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch}")
    g = torch.Generator().manual_seed(seed)

    def images(shape):  # uint8 pixels + int64 labels, as a decoded data set sits in memory
        return [(torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=g),
                 torch.randint(0, 10, (batch,), generator=g)) for _ in range(pool_size)]

    def image_feed(b, device):
        x, y = b
        return x.to(device).float().div_(255.0).sub_(0.5), y.to(device)

    def ce(model, x, y):
        return F.cross_entropy(model(x), y)

    if name == "fcn5":
        pool = images((784,))
        return Workload(name, build_fcn5(), pool, image_feed, ce, batch, note="MNIST-shaped 784 inputs")
    if name == "cnn":
        return Workload(name, build_cifar_cnn(), images((3, 32, 32)), image_feed, ce, batch,
                        note="CIFAR-10-shaped 3x32x32")
    if name == "resnet56":
        return Workload(name, build_resnet(56), images((3, 32, 32)), image_feed, ce, batch,
                        note="CIFAR-10-shaped 3x32x32")
    if name == "lstm":
        pool = []
        for _ in range(pool_size):
            seq = torch.randint(0, PTB_VOCAB, (batch, PTB_STEPS + 1), generator=g)
            pool.append((seq[:, :-1].contiguous(), seq[:, 1:].contiguous()))

        def token_feed(b, device):
            return b[0].to(device), b[1].to(device)

        def lm_loss(model, x, y):
            return F.cross_entropy(model(x).reshape(-1, PTB_VOCAB), y.reshape(-1))

        return Workload(name, build_lstm(), pool, token_feed, lm_loss, batch,
                        note=f"PTB-shaped: {PTB_STEPS} steps, vocabulary {PTB_VOCAB}")
    raise ConfigError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")


# ----------------------------------------------------------------------------------------------------
# Timing


@dataclass
class Result:
    workload: str
    mode: str            # "train" (DLBench's metric) or "infer"
    device: str
    threads: int
    batch: int
    median_ms: float     # wall time per mini-batch, median over repeats
    q1_ms: float
    q3_ms: float
    min_ms: float
    max_ms: float
    repeats_ms: List[float]
    steps_per_repeat: int
    samples_per_s: float
    params: int
    note: str = ""
    energy_per_sample_j: Optional[float] = None  # measured by `meter` (median over repeats), else None
    energy_meter: str = ""

    def key(self) -> Tuple[str, str, str, int, int]:
        return (self.workload, self.mode, self.device, self.threads, self.batch)


def quartiles(values: Sequence[float]) -> Tuple[float, float, float]:
    """(q1, median, q3) with linear interpolation; works for one value."""
    v = sorted(values)
    if not v:
        raise ValueError("no values")

    def q(p: float) -> float:
        pos = p * (len(v) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)

    return q(0.25), q(0.5), q(0.75)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_workload(w: Workload, *, device: str = "cpu", mode: str = "train", warmup: int = 3,
                  repeats: int = 5, steps: int = 5, threads: Optional[int] = None,
                  clock: Callable[[], float] = time.perf_counter, meter=None) -> Result:
    """Median wall time per mini-batch over `repeats` timings of `steps` steps each, after warm-up.

    meter: an effdl_ros.energy.meters.Meter (NVML, RAPL, ...); when given, each repeat's energy is read
    too and the median energy per sample is reported as measured (the whole device: other load counts).
    """
    import torch

    if mode not in ("train", "infer"):
        raise ConfigError(f"mode {mode!r} is not train or infer")
    if warmup < 0 or repeats < 1 or steps < 1:
        raise ConfigError("warm-up must be >= 0, repeats and steps >= 1")
    if threads:
        torch.set_num_threads(int(threads))
    model = w.model.to(device)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    it = [0]

    def step() -> None:
        batch = w.pool[it[0] % len(w.pool)]
        it[0] += 1
        x, y = w.feed(batch, device)
        if mode == "train":
            opt.zero_grad(set_to_none=True)
            w.loss(model, x, y).backward()
            opt.step()
        else:
            with torch.inference_mode():
                model(x)

    model.train(mode == "train")
    for _ in range(warmup):
        step()
    _sync(device)
    per_batch, per_sample_j = [], []
    for _ in range(repeats):
        e0 = meter.read().energy_j if meter is not None else None
        t0 = clock()
        for _ in range(steps):
            step()
        _sync(device)
        per_batch.append((clock() - t0) * 1000.0 / steps)
        if meter is not None:
            per_sample_j.append((meter.read().energy_j - e0) / (steps * w.samples_per_batch))
    q1, med, q3 = quartiles(per_batch)
    return Result(w.name, mode, device, int(torch.get_num_threads()), w.samples_per_batch, med, q1, q3,
                  min(per_batch), max(per_batch), per_batch, steps,
                  w.samples_per_batch / (med / 1000.0) if med > 0 else float("inf"), params, w.note,
                  statistics.median(per_sample_j) if per_sample_j else None,
                  getattr(meter, "name", "") if meter is not None else "")


@dataclass
class Plan:
    workloads: List[str] = field(default_factory=lambda: list(WORKLOADS))
    device: str = "cpu"
    threads: List[int] = field(default_factory=lambda: [1])
    batches: Dict[str, List[int]] = field(default_factory=dict)   # workload -> batch sizes
    modes: List[str] = field(default_factory=lambda: ["train"])
    warmup: int = 3
    repeats: int = 5
    steps: int = 5

    def batches_for(self, workload: str) -> List[int]:
        from effdl_ros.bench import own_models

        default = DEFAULT_BATCH.get(workload) or own_models.default_batch(workload)
        return self.batches.get(workload) or self.batches.get("*") or [default]


def parse_batches(specs: Sequence[str]) -> Dict[str, List[int]]:
    """`--batch 32,64` (every workload) and/or `--batch fcn5:32,64` (one workload)."""
    out: Dict[str, List[int]] = {}
    for spec in specs or []:
        name, _, sizes = spec.rpartition(":")
        name = name.strip() or "*"
        if name != "*" and name not in all_workloads():
            raise ConfigError(f"--batch {spec}: unknown workload {name!r}; known: {', '.join(all_workloads())}")
        try:
            values = [int(s) for s in sizes.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--batch {spec}: batch sizes must be integers separated by commas") from None
        if not values or min(values) < 1:
            raise ConfigError(f"--batch {spec}: give at least one batch size >= 1")
        out[name] = values
    return out


def parse_int_list(text: str, what: str) -> List[int]:
    try:
        values = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"{what} {text!r} must be integers separated by commas") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{what} {text!r}: give at least one value >= 1")
    return values


def environment(device: str) -> Dict[str, object]:
    """What the figures depend on, so that two JSON runs can be told apart (host vs container)."""
    import torch

    info: Dict[str, object] = {
        "python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
        "cpu": _cpu_model(), "logical_cpus": os.cpu_count(), "in_container": in_container(),
        "hostname": platform.node(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def in_container() -> bool:
    """Docker/Podman leave /.dockerenv or /run/.containerenv; cgroups name docker/containerd;
    `container=...` in the environment is systemd's convention (podman, LXC, `bench container`)."""
    if os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv") or os.environ.get("container"):
        return True
    try:
        with open("/proc/1/cgroup") as f:
            text = f.read()
        return any(k in text for k in ("docker", "containerd", "kubepods", "libpod"))
    except OSError:
        return False


def all_workloads() -> List[str]:
    from effdl_ros.bench.own_models import OWN

    return list(WORKLOADS) + list(OWN)


def expand_workloads(text: str) -> List[str]:
    """'fcn5,cnn', 'dlbench' (the four), 'own' (effdl_ros's networks) or 'all'."""
    from effdl_ros.bench.own_models import OWN

    out: List[str] = []
    for name in (n.strip() for n in str(text).split(",")):
        if not name:
            continue
        names = {"dlbench": list(WORKLOADS), "own": list(OWN), "all": all_workloads()}.get(name, [name])
        for n in names:
            if n not in all_workloads():
                raise ConfigError(f"unknown workload {n!r}; known: {', '.join(all_workloads())}, "
                                  "or dlbench, own, all")
            if n not in out:
                out.append(n)
    if not out:
        raise ConfigError("--workloads names no workload")
    return out


def run_plan(plan: Plan, *, progress: Optional[Callable[[Result], None]] = None,
             on_skip: Optional[Callable[[str, str], None]] = None, meter=None) -> Dict[str, object]:
    """Every (workload, mode, threads, batch) of the plan; returns the JSON-ready run.

    An own network that cannot be built is skipped (listed in the run's "skipped" with the reason).
    """
    import torch

    from effdl_ros.bench.own_models import OWN, make_own_workload

    if plan.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA GPU here")
    for name in plan.workloads:
        if name not in all_workloads():
            raise ConfigError(f"unknown workload {name!r}; known: {', '.join(all_workloads())}")
    env = environment(plan.device)  # at the start: the time stamp says when the run began
    before = torch.get_num_threads()
    results, skipped = [], {}
    try:
        for name in plan.workloads:
            for batch in plan.batches_for(name):
                for threads in plan.threads:
                    for mode in plan.modes:
                        if name in skipped:
                            continue
                        torch.manual_seed(0)
                        if name in OWN:
                            try:
                                w = make_own_workload(name, batch)
                            except ConfigError as err:
                                skipped[name] = str(err)
                                if on_skip:
                                    on_skip(name, str(err))
                                continue
                        else:
                            w = make_workload(name, batch)
                        r = time_workload(w, device=plan.device, mode=mode, warmup=plan.warmup,
                                          repeats=plan.repeats, steps=plan.steps, threads=threads,
                                          meter=meter)
                        results.append(r)
                        if progress:
                            progress(r)
                        del w
    finally:
        torch.set_num_threads(before)
    return {"kind": "effdl_ros.dlbench", "version": 1, "environment": env,
            "plan": asdict(plan), "results": [asdict(r) for r in results], "skipped": skipped}


def thread_speedups(results: Sequence[Dict[str, object]]) -> Dict[Tuple[str, str, int], Dict[int, float]]:
    """Speed-up over the fewest threads measured, per (workload, mode, batch): DLBench's scaling view."""
    groups: Dict[Tuple[str, str, int], Dict[int, float]] = {}
    for r in results:
        groups.setdefault((r["workload"], r["mode"], r["batch"]), {})[int(r["threads"])] = float(r["median_ms"])
    out = {}
    for key, by_t in groups.items():
        base_t = min(by_t)
        out[key] = {t: by_t[base_t] / ms for t, ms in sorted(by_t.items()) if ms > 0}
    return out


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
