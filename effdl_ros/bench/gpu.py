"""`effdl-ros bench gpu`: each model node's budget levels on a device against the same on the CPU.

Per node (ddi: compute fractions -> MAC ceiling; segmentation: input scale; tracker: its levels) and per
level: batch-1 ms per item (median, the device synchronised after each item, so it is the kernels' time
and not the launch's), energy per item, executed MACs, accuracy where the data is here (DDI top-1 on
CamVid patches, segmentation mIoU on CamVid val), and optionally the same with fp16 (CUDA autocast).

Energy per item is MEASURED where a meter reads the device: NVML's energy counter on a GPU (read around
a run of at least `min_seconds`, divided by the items; `idle_w` is the device's power measured idle
before, and `dynamic_j` = energy - idle_w x time, the part the work adds), RAPL on a CPU where its files
are readable. Elsewhere it is MODELLED (executed MACs x the energy profile: x86_cpu for the CPU,
desktop_gpu for a GPU) and the row says so. `cost_share` is each level's measured ms over the richest
level's, beside `mac_share`, the share the allocator's cost model assumes: where they differ the device
does not pay for a level what its MACs say (small kernels on a GPU are launch-bound).

The demo graph part runs the shipped pipeline (inproc, the bundled clip) with the model nodes on the
device, calibrates unconstrained, then holds 60 % of the measured power (a binding budget), and reports
each node's energy per item and its source from the nodes' own reports.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

DDI_FRACTIONS = (1.0, 0.5, 0.3, 0.2, 0.1)


@dataclass
class GpuBenchOptions:
    device: str = "cuda"
    items: int = 200              # DDI items per level (fewer frames for segmentation and tracking)
    seg_frames: int = 20
    track_frames: int = 30
    min_seconds: Optional[float] = None   # per level, for the energy counter (None: 1.0 on a GPU, 0 on a CPU)
    fp16: bool = True             # also run ddi and segmentation with fp16 (GPU only)
    compare_cpu: bool = True      # also run every level on the CPU
    demo_frames: int = 60         # frames of the demo graph part (0 = skip it)
    demo_calibrate_s: float = 4.0
    nodes: Sequence[str] = ("ddi", "segmentation", "tracker")


# ------------------------------------------------------------------------------------------ energy

class _Energy:
    """The device's meter (NVML on a GPU, RAPL on a CPU where readable), else the cost model."""

    def __init__(self, device) -> None:
        from effdl_ros.energy.cost_model import get_profile

        self.device = device
        self.meter, self.why = None, ""
        if device.type == "cuda":
            from effdl_ros.energy.gpu import meter_for_device

            self.meter, self.why = meter_for_device(device)
            self.profile = get_profile("desktop_gpu")
        else:
            from effdl_ros.energy.meters import MeterError, RaplMeter

            try:
                self.meter = RaplMeter()
                self.meter.start()
                self.meter.read()
            except MeterError as err:
                self.meter, self.why = None, str(err)
            self.profile = get_profile("x86_cpu")
        self.j_per_mac = self.profile.pj_per_mac / self.profile.efficiency * 1e-12
        self.idle_w = self._idle_w() if self.meter is not None and device.type == "cuda" else None

    def _idle_w(self, seconds: float = 1.0) -> float:
        from effdl_ros.device import synchronize

        synchronize(self.device)
        e0, t0 = self.meter.read().energy_j, time.monotonic()
        time.sleep(seconds)
        return (self.meter.read().energy_j - e0) / (time.monotonic() - t0)

    @property
    def name(self) -> str:
        return self.meter.name if self.meter is not None else f"model:{self.profile.name}"

    def read(self) -> Optional[float]:
        return self.meter.read().energy_j if self.meter is not None else None


def _measure(run_item: Callable[[int], int], n_items: int, device, energy: _Energy, *,
             min_seconds: float) -> Dict:
    """Time items 0..n-1 (cycled until min_seconds), synchronising after each; energy over the run."""
    from effdl_ros.device import synchronize

    for i in range(min(3, n_items)):           # warm-up: allocator, cuDNN autotuning, caches
        run_item(i)
    synchronize(device)
    e0 = energy.read()
    t_start = time.perf_counter()
    times, macs, done = [], [], 0
    while done < n_items or time.perf_counter() - t_start < min_seconds:
        t0 = time.perf_counter()
        macs.append(run_item(done % n_items))
        synchronize(device)
        times.append((time.perf_counter() - t0) * 1e3)
        done += 1
    elapsed = time.perf_counter() - t_start
    e1 = energy.read()
    mean_macs = statistics.fmean(macs)
    row = {"ms": statistics.median(times), "ms_mean": statistics.fmean(times), "items_timed": done,
           "macs": mean_macs, "modelled_j": mean_macs * energy.j_per_mac}
    if e0 is not None and e1 is not None:
        row.update(j=(e1 - e0) / done, source="measured", meter=energy.name)
        if energy.idle_w is not None:
            row.update(idle_w=energy.idle_w, dynamic_j=max(0.0, (e1 - e0) - energy.idle_w * elapsed) / done)
    else:
        row.update(j=row["modelled_j"], source="modelled", meter=energy.name)
    return row


# ------------------------------------------------------------------------------------------ nodes

def _ddi_rows(device, energy, opts, fp16: bool) -> List[Dict]:
    import torch

    from effdl_ros.ddi.checkpoint import load_checkpoint
    from effdl_ros.ddi.data import load_task, normalise
    from effdl_ros.ddi.engine import DDIEngine, DDISettings
    from effdl_ros.device import autocast, move_model
    from effdl_ros.resources import share_path

    model, meta = load_checkpoint(share_path("models", "ddi_camvid_patches.pt"))
    engine = move_model(DDIEngine(model), device)
    try:
        task = load_task("camvid_patches", max_test=opts.items)
        xs = normalise(task.x_test_raw, meta["mean"], meta["std"])
        ys, data = task.y_test, "CamVid patches (test split)"
    except Exception as err:  # noqa: BLE001 - no data here: time random inputs, no accuracy
        cfg = model.config
        xs = np.random.default_rng(0).standard_normal((opts.items, cfg.in_channels, cfg.image_size,
                                                       cfg.image_size)).astype(np.float32)
        ys, data = None, f"random inputs ({str(err).splitlines()[0][:80]})"
    x_dev = torch.from_numpy(xs).to(device)
    rows = []
    for f in DDI_FRACTIONS:
        settings = DDISettings(mac_ceiling=math.inf if f >= 1.0 else f * engine.max_macs)
        preds: Dict[int, int] = {}

        def run_item(i: int) -> int:
            with autocast(device, fp16):
                r = engine.run(x_dev[i:i + 1], settings)
            preds[i] = int(r.logits.argmax())
            return r.macs

        row = _measure(run_item, len(xs), device, energy, min_seconds=opts.min_seconds)
        row.update(node="ddi", level=f"compute {f:g}", knob=f, data=data)
        if ys is not None:
            row["accuracy"] = float(np.mean([preds[i] == int(ys[i]) for i in range(len(ys))]))
        rows.append(row)
    return rows


def _segmentation_rows(device, energy, opts, fp16: bool) -> List[Dict]:
    from effdl_ros.resources import share_path
    from effdl_ros.segmentation.inference import input_size, predict
    from effdl_ros.segmentation.network import count_macs, load_checkpoint
    from effdl_ros.segmentation.settings import SCALES

    model, cfg = load_checkpoint(share_path("models", "madan_multi.pt"))
    model = model.to(device)
    frames, masks, data = _camvid_frames(opts.seg_frames)
    rows = []
    for s in SCALES:
        macs = count_macs(model, input_size(cfg, s))
        preds: Dict[int, np.ndarray] = {}

        def run_item(i: int) -> int:
            preds[i] = predict(model, cfg, frames[i], scale=s, device=device, fp16=fp16)  # host labels
            return macs

        row = _measure(run_item, len(frames), device, energy, min_seconds=opts.min_seconds)
        row.update(node="segmentation", level=f"scale {s:g}", knob=s, data=data)
        if masks is not None:
            row["accuracy"] = _miou([preds[i] for i in range(len(frames))], masks, cfg)
        rows.append(row)
    return rows


def _camvid_frames(n: int):
    try:
        from effdl_ros.data.camvid import default_root, load_pair, pairs

        val = pairs(default_root(), "val")
        if not val:
            raise FileNotFoundError("no CamVid val pairs")
        step = max(1, len(val) // max(1, n))
        loaded = [load_pair(*p) for p in val[::step][:n]]
        return [a for a, _ in loaded], [b for _, b in loaded], f"CamVid val ({len(loaded)} frames)"
    except Exception as err:  # noqa: BLE001 - no data: random frames of CamVid's size, no mIoU
        rng = np.random.default_rng(0)
        return ([rng.integers(0, 255, (360, 480, 3), dtype=np.uint8) for _ in range(n)], None,
                f"random 360x480 frames ({str(err).splitlines()[0][:80]})")


def _miou(preds, masks, cfg) -> float:
    from effdl_ros.data.camvid import CLASSES, IGNORE_INDEX
    from effdl_ros.segmentation.metrics import confusion_matrix, scores

    names = list(cfg.get("classes", CLASSES))
    conf = np.zeros((len(names), len(names)), np.int64)
    for p, m in zip(preds, masks):
        conf += confusion_matrix(p, m, len(names), IGNORE_INDEX)
    return float(scores(conf, names)["miou"])


def _tracker_rows(device, energy, opts) -> List[Dict]:
    from effdl_ros.resources import share_path
    from effdl_ros.tracking.tracker import LEVELS, RoamTracker, TrackerSettings, load_model, move_model

    model = move_model(load_model(share_path("models", "roam_r18l1.pt")), device)

    def frame(k: int) -> np.ndarray:
        """A red square drifting to and fro over a grey field (a triangle wave: no re-init on wrap)."""
        phase = k % 40
        step = phase if phase < 20 else 40 - phase
        img = np.full((240, 320, 3), 90, np.uint8)
        x, y = 100 + 2 * step, 80 + step
        img[y:y + 40, x:x + 30] = (230, 40, 40)
        return img

    frames = [frame(k) for k in range(40)]
    rows = []
    levels = [0, 1, 4, 9, 10, 11] if len(LEVELS) == 12 else list(range(len(LEVELS)))
    for li in levels:
        tracker = RoamTracker(model, TrackerSettings(**LEVELS[li]))
        tracker.init(frames[0], (100.0, 80.0, 30.0, 40.0))   # not timed: the per-frame cost is
        state = {"k": 0}

        def run_item(_i: int) -> int:
            state["k"] += 1
            return tracker.update(frames[state["k"] % len(frames)]).macs

        row = _measure(run_item, opts.track_frames, device, energy, min_seconds=opts.min_seconds)
        lv = LEVELS[li]
        row.update(node="tracker", level=f"level {li}", knob=li, data="synthetic drifting square",
                   settings=f"window {lv['search_size']}, scales {len(lv['search_scales'])}, "
                            f"update every {lv['update_interval']} x {lv['optimizer_steps']} steps")
        rows.append(row)
    return rows


def _shares(rows: List[Dict]) -> None:
    """cost_share (measured mean ms / the richest level's: the tracker's updates amortised, as the
    allocator's model has them) beside mac_share (the cost model's)."""
    by = {}
    for r in rows:
        by.setdefault((r["node"], r["device"], r["fp16"]), []).append(r)
    for group in by.values():
        top = group[0]
        for r in group:
            r["cost_share"] = r["ms_mean"] / top["ms_mean"] if top["ms_mean"] else None
            r["mac_share"] = r["macs"] / top["macs"] if top["macs"] else None
            r["j_share"] = r["j"] / top["j"] if top["j"] else None


def bench_device(device_spec: str, opts: GpuBenchOptions, log=print) -> Dict:
    """Every node's levels on `device_spec` (and on the CPU where it is a GPU); see the module docstring."""
    from effdl_ros.device import device_name, resolve_device

    device = resolve_device(device_spec, what="--device")
    devices = [device] + ([resolve_device("cpu")] if device.type == "cuda" and opts.compare_cpu else [])
    rows: List[Dict] = []
    meters = {}
    for dev in devices:
        energy = _Energy(dev)
        meters[str(dev)] = {"meter": energy.name, "why_not_measured": energy.why or None,
                            "idle_w": energy.idle_w, "name": device_name(dev)}
        o = GpuBenchOptions(**{**opts.__dict__, "min_seconds": opts.min_seconds if opts.min_seconds is not None
                               else (1.0 if dev.type == "cuda" else 0.0)})
        for fp16 in ([False, True] if opts.fp16 and dev.type == "cuda" else [False]):
            for node in opts.nodes:
                if node == "tracker" and fp16:
                    continue   # fp32 only: its online steps use learning rates below fp16's resolution
                log(f"{node} on {dev}{' fp16' if fp16 else ''} ...")
                make = {"ddi": lambda: _ddi_rows(dev, energy, o, fp16),
                        "segmentation": lambda: _segmentation_rows(dev, energy, o, fp16),
                        "tracker": lambda: _tracker_rows(dev, energy, o)}[node]
                for r in make():
                    r.update(device=str(dev), fp16=fp16)
                    rows.append(r)
    _shares(rows)
    return {"device": str(device), "devices": meters, "rows": rows}


# ------------------------------------------------------------------------------------------ demo graph

def demo_graph(device_spec: str, *, frames: int, calibrate_s: float, fps: float = 5.0, settle_frames: int = 10,
               log=print) -> Dict:
    """The shipped graph on the bundled clip with the model nodes on the device, budget 60 % of its
    calibrated power (binding); per node: mean energy per item and its source, mean power vs budget,
    over the frames from `settle_frames` after calibration on (the allocator moves <= 10 % a period)."""
    from effdl_ros.runtime import backend

    backend.select("inproc")
    from effdl_ros.bench.budget_loop import INIT_BOX, looped
    from effdl_ros.bench.replay import Pacer, open_input
    from effdl_ros.device import resolve_device
    from effdl_ros.graph.replay import replay
    from effdl_ros.graph.validate import checked_pipeline

    device = resolve_device(device_spec, what="--device")
    pipeline = checked_pipeline(None)
    for spec in pipeline.nodes:
        if spec.executable in ("ddi", "segmentation", "tracker"):
            spec.parameters.update(device=str(device))
        if spec.executable == "energy_monitor":
            spec.parameters.update(calibrate_s=float(calibrate_s), budget_fraction=0.6)
    inp = looped(open_input("samples/vtest", limit=min(frames, 40), fps=fps), max(1, math.ceil(frames / 40)))
    log(f"demo graph on {device}: {frames} frames at {fps:g} frames/s, calibrating {calibrate_s:g} s ...")
    seen = {"calibrated": None, "at": None}

    def on_frame(index, session):
        monitor = session.node("energy_monitor")
        seen["calibrated"] = getattr(monitor, "calibrated_w", None) if monitor is not None else None
        if seen["calibrated"] is not None and seen["at"] is None:
            seen["at"] = index

    records, _, elapsed = replay(inp, pipeline, Pacer(1.0), on_frame=on_frame, init_box=list(INIT_BOX))
    start = len(records) if seen["at"] is None else seen["at"] + settle_frames
    return summarise_demo(records[start:], device=str(device), calibrated_w=seen["calibrated"],
                          elapsed_s=elapsed, frames_total=len(records))


def summarise_demo(records: List[Dict], *, device: str, calibrated_w=None, elapsed_s=None,
                   frames_total: Optional[int] = None) -> Dict:
    """Per node over the given records (those under the calibrated budget, with a finite total): mean
    energy per item, its source, mean power, mean budget; and the graph's total power vs the total budget."""
    bound = [r for r in records if math.isfinite(r.get("budget_w", {}).get("total", math.inf))]
    nodes: Dict[str, Dict] = {}
    for name in sorted({n for r in bound for n in r.get("energy_j", {})}):
        e = [r["energy_j"][name] for r in bound if name in r.get("energy_j", {})]
        p = [r["power_w"][name] for r in bound if name in r.get("power_w", {})]
        b = [r["budget_w"][name] for r in bound if name in r.get("budget_w", {})]
        src = sorted({r["energy_source"][name] for r in bound if name in r.get("energy_source", {})})
        nodes[name] = {"j_per_item": statistics.fmean(e) if e else None, "power_w": statistics.fmean(p) if p else None,
                       "budget_w": statistics.fmean(b) if b else None, "source": "+".join(src)}
    total_budget = [r["budget_w"]["total"] for r in bound]
    total_power = [sum(r.get("power_w", {}).values()) for r in bound]
    return {"device": device, "frames": len(records) if frames_total is None else frames_total,
            "frames_under_budget": len(bound),
            "calibrated_w": calibrated_w, "total_budget_w": statistics.fmean(total_budget) if total_budget else None,
            "total_power_w": statistics.fmean(total_power) if total_power else None, "nodes": nodes,
            "elapsed_s": elapsed_s}


# ------------------------------------------------------------------------------------------ table

def format_table(result: Dict) -> str:
    lines = []
    for dev, m in result["devices"].items():
        idle = f", idle {m['idle_w']:.1f} W" if m.get("idle_w") is not None else ""
        lines.append(f"{dev}: {m['name']}; energy from {m['meter']}{idle}"
                     + (f" (not measured: {m['why_not_measured']})" if m.get("why_not_measured") else ""))
    lines.append(f"{'node':<13} {'level':<12} {'device':<7} {'fp16':<5} {'ms med':>8} {'ms mean':>8} {'J/item':>10} "
                 f"{'source':<9} {'ms share':>8} {'MAC share':>9} {'accuracy':>8}")
    for r in result["rows"]:
        acc = f"{100 * r['accuracy']:.1f}" if r.get("accuracy") is not None else "-"
        lines.append(f"{r['node']:<13} {r['level']:<12} {r['device']:<7} {'yes' if r['fp16'] else 'no':<5} "
                     f"{r['ms']:8.2f} {r['ms_mean']:8.2f} {r['j']:10.3g} {r['source']:<9} {r['cost_share']:8.2f} "
                     f"{r['mac_share']:9.2f} {acc:>8}")
    demo = result.get("demo")
    if demo:
        lines.append(f"demo graph on {demo['device']}: budget 60 % of {demo['calibrated_w'] or float('nan'):.3g} W "
                     f"calibrated -> total {demo['total_budget_w'] or float('nan'):.3g} W, graph "
                     f"{demo['total_power_w'] or float('nan'):.3g} W over {demo['frames_under_budget']} frames")
        for name, n in demo["nodes"].items():
            lines.append(f"  {name:<13} {n['j_per_item'] or float('nan'):.4g} J/item ({n['source']}), "
                         f"{n['power_w'] or float('nan'):.3g} W of {n['budget_w'] or float('nan'):.3g} W budget")
    return "\n".join(lines)
