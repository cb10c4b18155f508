"""Which torch device a model node or command runs on, and the few helpers every device user shares.

A device is named as in torch (`cpu`, `cuda`, `cuda:N`) or `auto` (the first GPU torch sees, else the
CPU). Asking for CUDA where torch sees none is a ConfigError of one sentence, raised before any model is
loaded, so a node never half-starts. Frames reach the device through pinned host memory with a
non-blocking copy; a latency on a GPU is only true after torch.cuda.synchronize (kernels are queued
asynchronously), so `synchronize` is called before every clock read that times device work.
No ROS here.
"""
from __future__ import annotations

import contextlib
import re
from typing import Any, Optional

from effdl_ros.errors import ConfigError

_SPEC = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")
DEVICE_HELP = "cpu (default), cuda, cuda:N, or auto (the first GPU torch sees, else cpu)"


def check_spec(spec: str) -> Optional[str]:
    """Why `spec` is not a device name (one clause), or None: a syntax check without importing torch."""
    if not isinstance(spec, str) or not _SPEC.match(spec.strip().lower()):
        return f"must be {DEVICE_HELP}, got {spec!r}"
    return None


def resolve_device(spec: str = "cpu", *, what: str = "device", cuda_available: Optional[bool] = None,
                   device_count: Optional[int] = None):
    """torch.device for `spec`; ConfigError (one sentence naming `what`) when CUDA is asked for and absent.

    :param what: how the caller names the setting in the error, e.g. "/ddi: parameter 'device'".
    :param cuda_available: injectable in tests (default torch.cuda.is_available()).
    :param device_count: injectable in tests (default torch.cuda.device_count()).
    """
    import torch

    problem = check_spec(spec)
    if problem is not None:
        raise ConfigError(f"{what} {problem}.")
    spec = spec.strip().lower()
    available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if spec == "auto":
        return torch.device("cuda:0" if available else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not available:
        raise ConfigError(f"{what} asks for {spec}, but torch sees no CUDA device "
                          f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use cpu.")
    count = torch.cuda.device_count() if device_count is None else device_count
    index = int(spec.split(":")[1]) if ":" in spec else 0
    if index >= count:
        raise ConfigError(f"{what} asks for {spec}, but torch sees {count} CUDA device(s) (cuda:0..cuda:{count - 1}).")
    return torch.device("cuda", index)


def is_cuda(device) -> bool:
    return getattr(device, "type", str(device)) == "cuda"


def synchronize(device) -> None:
    """Wait for the device's queued kernels (no-op on the CPU): call it before reading a clock or a meter."""
    if is_cuda(device):
        import torch

        torch.cuda.synchronize(device)


def to_device(array_or_tensor: Any, device, *, dtype=None):
    """A host array/tensor on `device`: pinned host memory and a non-blocking copy where it is a GPU.

    On the CPU the tensor is returned as is (no copy), so a node on `cpu` does exactly what it did before.
    """
    import numpy as np
    import torch

    t = torch.from_numpy(np.ascontiguousarray(array_or_tensor)) if isinstance(array_or_tensor, np.ndarray) \
        else array_or_tensor
    if not is_cuda(device):
        return t if dtype is None else t.to(dtype)
    if t.device.type == "cpu":
        t = t.pin_memory()
    t = t.to(device, non_blocking=True)
    return t if dtype is None else t.to(dtype)


def check_fp16(fp16: bool, device, *, what: str = "fp16") -> None:
    """fp16 runs under CUDA autocast only; on the CPU half-precision convolutions are slower, not cheaper."""
    if fp16 and not is_cuda(device):
        raise ConfigError(f"{what} needs a CUDA device (set device to cuda), the device is {device}.")


def autocast(device, fp16: bool):
    """torch.autocast to float16 on a GPU when fp16 is set, else a context that changes nothing."""
    if fp16 and is_cuda(device):
        import torch

        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def move_model(obj: Any, device, *, _seen=None):
    """Move every tensor an object holds (modules, plain tensors, lists, dicts, dataclasses, attributes)
    to `device`, in place where possible; returns the moved object. For engines built from tensors
    (DDIEngine) rather than one nn.Module."""
    import torch

    seen = set() if _seen is None else _seen
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, torch.nn.Module):
        return obj.to(device)
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None))):
        return obj
    seen.add(id(obj))
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            obj[i] = move_model(v, device, _seen=seen)
        return obj
    if isinstance(obj, tuple):
        return type(obj)(move_model(v, device, _seen=seen) for v in obj) if not hasattr(obj, "_fields") \
            else type(obj)(*(move_model(v, device, _seen=seen) for v in obj))
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = move_model(obj[k], device, _seen=seen)
        return obj
    if hasattr(obj, "__dict__"):
        for k, v in vars(obj).items():
            if isinstance(v, (torch.Tensor, torch.nn.Module, list, dict, tuple)) or hasattr(v, "__dict__"):
                object.__setattr__(obj, k, move_model(v, device, _seen=seen))
    return obj


def device_name(device) -> str:
    """'NVIDIA H100 80GB HBM3 (cuda:0)' or the CPU's model name (from /proc/cpuinfo where readable)."""
    if is_cuda(device):
        import torch

        return f"{torch.cuda.get_device_name(device)} ({device})"
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + " (cpu)"
    except OSError:
        pass
    return (platform.processor() or platform.machine()) + " (cpu)"
