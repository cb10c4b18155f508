"""One real run of the NVML meter: idle, then under a GPU matmul load; prints JSON (measured figures).

    python3 -m effdl_ros.energy.nvml_check [--idle 2] [--load 3] [--json out.json]

Needs nvidia-ml-py (pynvml) and a GPU; torch with CUDA for the load phase (skipped without it). Only
the standard library and effdl_ros.energy.meters are imported, so it runs on a bare GPU machine.
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def _phase(meter, seconds: float, work=None) -> dict:
    meter.start()
    t0 = time.monotonic()
    samples = []  # (t, cumulative J)
    while time.monotonic() - t0 < seconds:
        if work is not None:
            work()
        else:
            time.sleep(0.05)
        reading = meter.read()
        samples.append((reading.t, reading.energy_j))
    r = meter.read()
    # NVML's energy counter advances in steps, so power between two reads a few ms apart spikes far
    # above the board's limit (2.5 kW seen on an H200); the peak is taken over windows of >= 0.5 s.
    peaks = []
    j = 0
    for i in range(len(samples)):
        while j < i and samples[i][0] - samples[j + 1][0] >= 0.5:
            j += 1
        dt = samples[i][0] - samples[j][0]
        if dt >= 0.5:
            peaks.append((samples[i][1] - samples[j][1]) / dt)
    return {"seconds": round(time.monotonic() - t0, 3), "energy_j": r.energy_j,
            "mean_power_w": r.energy_j / max(1e-9, time.monotonic() - t0),
            "max_power_w_0p5s": max(peaks) if peaks else None, "reads": len(samples) + 1}


def main(argv=None) -> int:
    from effdl_ros.energy.meters import MeterError, NvmlMeter

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--idle", type=float, default=2.0)
    p.add_argument("--load", type=float, default=3.0)
    p.add_argument("--json", default="")
    args = p.parse_args(argv)
    try:
        meter = NvmlMeter(0)
    except MeterError as err:
        print(f"nvml_check: {err}", file=sys.stderr)
        return 2
    import pynvml

    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    name = pynvml.nvmlDeviceGetName(handle)
    out = {"meter": meter.name, "gpu": name if isinstance(name, str) else name.decode(),
           "source": "measured", "idle": _phase(meter, args.idle)}
    try:
        import torch

        if torch.cuda.is_available():
            a = torch.randn(8192, 8192, device="cuda")

            def work():
                (a @ a).sum().item()

            work()
            out["load"] = _phase(meter, args.load, work)
            out["load"]["work"] = "8192x8192 fp32 matmuls"
    except ImportError:
        out["load"] = "skipped: torch not importable"
    meter.close()
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
