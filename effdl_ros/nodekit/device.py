"""A model node's `device` and `fp16` parameters -> torch device, autocast flag and GPU energy meter.

One place, so every model node reads them the same way: a bad or absent device is a ConfigError
naming the node and the parameter (a startup error, exit code 2); on a GPU the node's Accountant gets
an NVML meter (effdl_ros.energy.gpu) and its reports say `measured`; on the CPU nothing changes.
"""
from __future__ import annotations

from typing import Optional, Tuple


def node_device(node, *, fp16_parameter: bool = True) -> Tuple["object", bool]:
    """(torch.device, fp16) from the node's `device` (and `fp16`) parameters."""
    from effdl_ros.device import check_fp16, resolve_device

    name = node.get_fully_qualified_name()
    device = resolve_device(str(node.get_parameter("device").value), what=f"{name}: parameter 'device'")
    fp16 = bool(node.get_parameter("fp16").value) if fp16_parameter else False
    check_fp16(fp16, device, what=f"{name}: parameter 'fp16'")
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(device)
    return device, fp16


def node_meter(node, device) -> Optional[object]:
    """The NVML meter for a node on a GPU (None on the CPU, or where NVML cannot read the GPU: then the
    cost model stays, and the node logs why once)."""
    if getattr(device, "type", "cpu") != "cuda":
        return None
    from effdl_ros.energy.gpu import meter_for_device

    meter, why = meter_for_device(device)
    if meter is None:
        node.get_logger().warning(f"GPU energy not measured ({why}); energy stays modelled")
    else:
        node.get_logger().info(f"GPU energy measured by {meter.name} (device energy x this process's GPU-time share)")
    return meter
