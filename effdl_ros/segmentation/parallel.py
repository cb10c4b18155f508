"""The MADAN comparison's stages as parallel processes on one GPU (``train madan --parallel``).

Why: the first GPU run trained every checkpoint one after the other in one process, and each loop was
bound by Python kernel launches (tiny networks, batches of 8): the H200 sat mostly idle at 7-13 GAN
iterations/s. Stages that do not depend on each other now run side by side, one process each, so
one process's kernels run while another's host is still launching (measured on an H200: four GAN
loops together did ~4x the first run's images/s, but each about as fast as the first run's one loop,
because the processes time-share the GPU; the gain is that no stage waits for another):

* phase A: the source-only segmenters (one per source; they are also DSC's segmenters), the
  merged-source segmenter and the oracle;
* phase B: per source a CycleGAN+DSC and its segmenter with feature-level alignment (single-source
  adaptation), and MADAN (all sources at once: shared target discriminator, DSC, SAD, CCD) and its
  segmenter; optionally MADAN variants (ablations) beside it.

Every pixel-level loop of phase B stops at the same wall-clock instant, so the single-source runs
(one generator pair each) get more iterations than MADAN (two pairs plus SAD and CCD). Segmenters stop
at ``plan.seg_iters`` or ``seg_seconds``, whichever comes first. The iterations each stage actually did
are stored in its checkpoint and in the returned dict. Data (rendered scenes, CamVid frames) is
prepared once by the driver and handed to the workers as .npy files.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from effdl_ros.errors import ConfigError

#: MADAN variants a worker knows: name -> (checkpoint stem suffix, plan changes). "" is the method.
VARIANTS: Dict[str, Dict] = {"": {}, "noidt": {"idt_weight": 0.0}}


def _plan_from(d: Dict):
    from effdl_ros.segmentation.train import Plan

    d = dict(d)
    d["seconds"] = math.inf if d.get("seconds") is None else d["seconds"]
    return Plan(**d)


def _log_to(path: Path) -> Callable[[str], None]:
    def log(msg: str) -> None:
        with open(path, "a") as fh:
            fh.write(msg + "\n")
        print(msg, flush=True)
    return log


def train_all_parallel(sources: Sequence[str], camvid_root: Path, out_dir: Path, plan, *, device: str = "cuda",
                       seed: int = 0, madan_out: Optional[Path] = None, workers: int = 0,
                       seconds: float = 380.0, seg_seconds: float = 60.0, variants: Sequence[str] = (),
                       samples_png: Optional[Path] = None, log: Callable[[str], None] = print,
                       python: str = sys.executable, save_generators: bool = False) -> Dict[str, Dict]:
    """Train every benchmark checkpoint (plus ``variants`` of MADAN) within ``seconds`` of wall time.

    With ``save_generators`` each adapted checkpoint gets its pixel-level generators beside it
    (``<stem>_generators.pt``, see madan.save_generators).
    """
    import torch

    from effdl_ros.segmentation.scenes import render_domain
    from effdl_ros.segmentation.train import checkpoint_names, load_camvid_lowres

    t0 = time.perf_counter()
    if len(sources) < 2:
        raise ConfigError("train madan needs at least two sources, e.g. --sources sunny,dusk")
    for v in variants:
        if v not in VARIANTS or not v:
            raise ConfigError(f"unknown MADAN variant {v!r}; known: {', '.join(k for k in VARIANTS if k)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".madan_work_", dir=out_dir))
    try:
        H, W = plan.height, plan.width
        for k, s in enumerate(sources):
            imgs, labs = render_domain(s, plan.n_source, seed=seed + k, height=H, width=W, workers=workers)
            np.save(work / f"src_{s}_x.npy", imgs)
            np.save(work / f"src_{s}_y.npy", labs)
        t_imgs, t_labs = load_camvid_lowres(Path(camvid_root), "train", H, W,
                                            limit=None if plan.n_source > 100 else 16)
        np.save(work / "tgt_x.npy", t_imgs)
        np.save(work / "tgt_y.npy", t_labs)
        names = checkpoint_names(sources)
        spec = {"sources": list(sources), "seed": seed, "device": device, "seg_seconds": seg_seconds,
                "plan": {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                         for k, v in asdict(plan).items()},
                "paths": {role: str(out_dir / n) for role, n in names.items()},
                "samples_png": str(samples_png) if samples_png else None, "save_generators": bool(save_generators)}
        if madan_out is not None:
            spec["paths"]["madan"] = str(madan_out)
        for v in variants:
            base = Path(spec["paths"]["madan"])
            spec["paths"][f"madan-{v}"] = str(base.with_name(f"{base.stem}_{v}{base.suffix}"))
        (work / "spec.json").write_text(json.dumps(spec))
        log(f"data: {len(sources)} sources x {plan.n_source} rendered scenes, CamVid train {len(t_imgs)} frames "
            f"(unlabelled for adaptation), {H}x{W}, {time.perf_counter() - t0:.1f}s")
        deadline = t0 + seconds

        def run_phase(roles: List[str], extra: Sequence[str], hard_until: float) -> None:
            procs = []
            for role in roles:
                cmd = [python, "-m", "effdl_ros.segmentation.parallel", "--work", str(work), "--role", role, *extra]
                procs.append((role, subprocess.Popen(cmd, stdout=open(work / f"{role}.out", "w"),
                                                     stderr=subprocess.STDOUT)))
            for role, p in procs:
                try:
                    p.wait(timeout=max(1.0, hard_until - time.perf_counter()))
                except subprocess.TimeoutExpired:
                    log(f"[{role}] over the time limit: stopped")
                    p.kill()
                    p.wait()
                for line in (work / f"{role}.out").read_text().splitlines():
                    if line.startswith("[") or "rror" in line or "ynchroniz" in line:
                        log(line)
                if p.returncode != 0:
                    log(f"[{role}] exit code {p.returncode}; last output:\n"
                        + "\n".join((work / f"{role}.out").read_text().splitlines()[-15:]))

        phase_a = [f"seg:{s}" for s in sources] + ["seg:merged", "seg:oracle"]
        run_phase(phase_a, [], deadline)
        log(f"phase A done at {time.perf_counter() - t0:.1f}s")
        # Phase B: the pixel-level loops stop together; leave time for start-up, translation, the
        # segmenter (seg_seconds) and saving before the deadline.
        gan_until = time.time() + max(20.0, deadline - time.perf_counter() - seg_seconds - 30.0)
        phase_b = [f"single:{s}" for s in sources] + ["madan"] + [f"madan-{v}" for v in variants]
        run_phase(phase_b, ["--gan-until", f"{gan_until:.3f}"], deadline + 15.0)
        results = {}
        for f in sorted(work.glob("*.info.json")):
            results[f.name[: -len(".info.json")]] = json.loads(f.read_text())
        log(f"total {time.perf_counter() - t0:.1f}s")
        return results
    finally:
        if device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()
        shutil.rmtree(work, ignore_errors=True)


def _worker(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--role", required=True)
    ap.add_argument("--gan-until", type=float, default=None, help="epoch seconds at which pixel-level loops stop")
    a = ap.parse_args(argv)
    import torch

    from effdl_ros.data.camvid import CLASSES
    from effdl_ros.segmentation.network import TinySegNet
    from effdl_ros.segmentation.train import (
        _save_samples,
        save_role_checkpoint,
        save_role_generators,
        train_pixel_level,
        train_segmenter,
        translate,
    )

    work = Path(a.work)
    spec = json.loads((work / "spec.json").read_text())
    plan = _plan_from(spec["plan"])
    sources, seed, device = spec["sources"], int(spec["seed"]), spec["device"]
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_num_threads(1)
    log = _log_to(work / f"{a.role.replace(':', '_')}.log")

    def load(name: str):
        return torch.from_numpy(np.load(work / name)).to(device)

    def src(s: str):
        return (s, load(f"src_{s}_x.npy"), load(f"src_{s}_y.npy"))

    target = load("tgt_x.npy")
    role = a.role
    quiet = lambda m: None  # noqa: E731
    wp = replace(plan, fa_start=0.0, sad_start=0.0, ccd_start=0.0, dynamic_iters=0)
    kind, _, name = role.partition(":")

    def save(r: str, model, info: Dict, key: str) -> None:
        save_role_checkpoint(Path(spec["paths"][key]), model, info, role=r, plan=plan, sources=sources, seed=seed)
        (work / f"{role.replace(':', '_')}.info.json").write_text(
            json.dumps({"path": spec["paths"][key], **info}, default=str))

    if kind == "seg":
        if name == "merged":
            parts = [src(s) for s in sources]
            imgs, labs = torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts])
        elif name == "oracle":
            imgs, labs = target, load("tgt_y.npy")
        else:
            _, imgs, labs = src(name)
        if device.startswith("cuda"):  # untimed warm-up (CUDA context, cuDNN autotuning)
            train_segmenter(imgs, labs, wp, device=device, seed=seed, iters=5, log=quiet)
        model, info = train_segmenter(imgs, labs, plan, device=device, seed=seed + 1, seconds=spec["seg_seconds"],
                                      log=log, name=f"source-only {name}" if name != "oracle" else "oracle")
        if name not in ("merged", "oracle"):
            torch.save(model.state_dict(), work / f"source_{name}.state.pt")  # DSC's segmenter, float32
        key = "oracle" if name == "oracle" else f"source:{name}"
        save(key, model, info, key)
        return 0

    # phase B: single:<s>, madan, madan-<variant>
    if kind == "single":
        data = [src(name)]
        madan, key, p = False, f"single:{name}", plan
    else:
        variant = role[len("madan-"):] if role.startswith("madan-") else ""
        p = replace(plan, **VARIANTS[variant])
        data = [src(s) for s in sources]
        madan, key = True, role if variant else "madan"
    segs = []
    for s, _, _ in data:
        m = TinySegNet(len(CLASSES), p.seg_width)
        m.load_state_dict(torch.load(work / f"source_{s}.state.pt", map_location="cpu", weights_only=True))
        segs.append(m.eval())
    if device.startswith("cuda"):
        # Untimed warm-up; it also names every host-device synchronisation left in the loops (warnings)
        torch.cuda.set_sync_debug_mode("warn")
        train_pixel_level(data, target, segs, wp, madan=madan, device=device, seed=seed, iters=3, log=quiet)
        train_segmenter(data[0][1], data[0][2], wp, device=device, seed=seed, iters=3, target_images=target,
                        log=quiet)
        torch.cuda.set_sync_debug_mode(0)
    gan_s = max(5.0, a.gan_until - time.time()) if a.gan_until else math.inf
    Gs, ginfo = train_pixel_level(data, target, segs, p, madan=madan, device=device, seed=seed + 2, seconds=gan_s,
                                  log=log, name=("MADAN pixel-level" + (f" ({role})" if role != "madan" else ""))
                                  if madan else f"CycleGAN+DSC {name}")
    adapted = torch.cat([translate(g, x[1]) for g, x in zip(Gs, data)], 0)
    labels = torch.cat([x[2] for x in data], 0)
    model, info = train_segmenter(adapted, labels, p, device=device, seed=seed + 1, seconds=spec["seg_seconds"],
                                  target_images=target, log=log,
                                  name=f"{role} segmenter + feature alignment")
    info = {**info, **{f"pixel_{kk}": vv for kk, vv in ginfo.items()}}
    save(key if kind == "single" else "madan", model, info, key)
    if spec.get("save_generators"):
        save_role_generators(Path(spec["paths"][key]), Gs, [x[0] for x in data], plan=p, seed=seed)
    if madan and role == "madan" and spec.get("samples_png"):
        _save_samples(Path(spec["samples_png"]), data, Gs)
    return 0


def quick_eval(paths: Sequence[Path], camvid_root: Path, *, device: str = "cpu", height: int = 120,
               width: int = 160) -> Dict[str, Dict]:
    """mIoU on CamVid val at the training resolution (labels resized nearest): a fast check on the
    training machine. The benchmark (``bench segmentation``) scores at the labels' full resolution."""
    import torch

    from effdl_ros.data.camvid import CLASSES, IGNORE_INDEX
    from effdl_ros.segmentation.metrics import confusion_matrix, scores
    from effdl_ros.segmentation.network import load_checkpoint, to_input
    from effdl_ros.segmentation.train import load_camvid_lowres

    imgs, labs = load_camvid_lowres(Path(camvid_root), "val", height, width)
    x = torch.from_numpy(imgs).to(device)
    out = {}
    for path in paths:
        if not Path(path).is_file():
            continue
        model, _ = load_checkpoint(Path(path), map_location=device)
        model.to(device)
        with torch.no_grad():
            pred = torch.cat([model(to_input(x[i:i + 32])).argmax(1) for i in range(0, len(x), 32)]).cpu().numpy()
        sc = scores(confusion_matrix(pred, labs, len(CLASSES), IGNORE_INDEX), CLASSES)
        out[Path(path).name] = {"miou": round(sc["miou"], 4), "pixel_acc": round(sc["pixel_acc"], 4),
                                "per_class": {k: (None if v is None else round(v, 3)) for k, v in sc["per_class"].items()}}
    return out


if __name__ == "__main__":
    sys.exit(_worker())
