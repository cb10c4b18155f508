"""Measured GPU energy per node: NVML's energy counter read around each item, split by GPU time share.

The Accountant reads its meter when an item starts and when it ends. For a GPU that is only right if the
queued kernels have finished, so this meter synchronises the device before every read. What the counter
gives is the whole device's energy; where several processes use the GPU at once (one node per process,
the dds/rclpy backends) each one's item would be charged the others' work too. So each step of the
counter is multiplied by this process's share of the GPU's busy time over the last `window_s` seconds,
from NVML's per-process samples (nvmlDeviceGetProcessUtilization: SM utilisation per process, sampled
by the driver about every 1/6 s):

    energy of process p = device energy x SM_p / sum over processes of SM

Alone on the GPU the share is 1 and the figure is the counter around the item. When NVML does not give
process samples, or never names this process (a container's PID namespace hides the host PIDs), the
share cannot be known: the whole device's energy is charged and the meter's name says so
("nvml:0:energy", against "nvml:0:energy*share" when the split applies). Figures are MEASURED (the
counter), the split is an attribution. NVML's counter steps every few ms, so a single short item may
read 0 J and the next one two items' worth; sums and means over many items are what to trust.
"""
from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Dict, Iterable, List, Optional, Tuple

from effdl_ros.energy.meters import Meter, MeterError, Reading, open_nvml_device

_log = logging.getLogger("effdl_ros.energy.gpu")


@dataclass(frozen=True)
class ProcessSample:
    """One NVML process-utilisation sample: pid, its driver timestamp (us) and SM utilisation (%)."""

    pid: int
    t_us: int
    sm: float


def shares(samples: Iterable[ProcessSample]) -> Dict[int, float]:
    """Each process's share of the summed SM utilisation over the samples (shares sum to 1; {} when
    no sample has any SM use)."""
    busy: Dict[int, float] = {}
    for s in samples:
        busy[s.pid] = busy.get(s.pid, 0.0) + max(0.0, float(s.sm))
    total = sum(busy.values())
    return {pid: b / total for pid, b in busy.items()} if total > 0 else {}


def split_energy(device_j: float, samples: Iterable[ProcessSample]) -> Dict[int, float]:
    """The device's energy split by each process's share of GPU time (sums to device_j when any busy)."""
    return {pid: device_j * share for pid, share in shares(samples).items()}


class NvmlShareMeter(Meter):
    """A process's share of an NVIDIA GPU's energy (see the module docstring).

    :param index: NVML device index (or pass `uuid`, which wins: CUDA_VISIBLE_DEVICES renumbers devices).
    :param nvml: the pynvml module (a fake in tests); imported when None.
    :param pid: the process whose share is attributed (default this process).
    :param sync: called before every read (torch.cuda.synchronize for the node's device).
    :param window_s: how far back the process samples count.
    """

    def __init__(self, index: int = 0, *, uuid: str = "", nvml=None, pid: Optional[int] = None,
                 sync: Optional[Callable[[], None]] = None, window_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        self._nvml, self._handle = open_nvml_device(nvml, index, uuid)
        nvml = self._nvml
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except Exception as err:  # noqa: BLE001 - before Volta
            raise MeterError(f"NVML: GPU {uuid or index} has no energy counter ({err}); per-item GPU energy "
                             "needs a Volta or newer GPU.") from None
        self._label = f"nvml:{index if not uuid else uuid[:12]}"
        self.pid = os.getpid() if pid is None else pid
        self._sync = sync or (lambda: None)
        self.window_us = int(window_s * 1e6)
        self._samples: Deque[ProcessSample] = deque()
        self._last_ts = 0
        self._seen_self = False
        self._process_samples_ok = True
        self.is_counter = True
        self.name = f"{self._label}:energy"

    # the device counter -------------------------------------------------------------------------------
    def _counter_j(self) -> List[Tuple[float, Optional[float]]]:
        try:
            return [(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) * 1e-3, None)]
        except Exception as err:  # noqa: BLE001
            raise MeterError(f"NVML: total energy unreadable ({err}).") from None

    # process samples ------------------------------------------------------------------------------------
    def _poll(self) -> None:
        if not self._process_samples_ok:
            return
        try:
            raw = self._nvml.nvmlDeviceGetProcessUtilization(self._handle, self._last_ts)
        except Exception as err:  # noqa: BLE001 - NotFound = no new sample; NotSupported = never
            if "not found" in str(err).lower() or type(err).__name__.endswith("NotFound"):
                return
            self._process_samples_ok = False
            _log.warning("%s: no per-process GPU samples (%s); charging the whole device's energy", self.name, err)
            return
        for s in raw or ():
            sample = ProcessSample(int(s.pid), int(s.timeStamp), float(s.smUtil))
            self._samples.append(sample)
            self._last_ts = max(self._last_ts, sample.t_us)
            if sample.pid == self.pid:
                self._seen_self = True
        while self._samples and self._samples[0].t_us < self._last_ts - self.window_us:
            self._samples.popleft()

    def share(self) -> float:
        """This process's share of the GPU time in the window; 1.0 where it cannot be known (see above)."""
        self._poll()
        if not self._seen_self:
            return 1.0
        return shares(self._samples).get(self.pid, 0.0 if self._samples else 1.0)

    # interface ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._sync()
        super().start()
        self._attributed = 0.0
        self._device_last = 0.0

    def read(self) -> Reading:
        if not self._started:
            self.start()
        self._sync()
        r = super().read()
        step = r.energy_j - self._device_last
        self._device_last = r.energy_j
        share = self.share()
        self._attributed += step * share
        self.name = f"{self._label}:energy*share" if self._seen_self else f"{self._label}:energy"
        return Reading(self._attributed, r.power_w * share, r.t)

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def meter_for_device(device, *, nvml=None) -> Tuple[Optional[Meter], str]:
    """(NvmlShareMeter for a CUDA device, "") or (None, why not): the CPU keeps the cost model/CPU time.

    The meter synchronises `device` before each read, so an item's energy includes its kernels.
    """
    if getattr(device, "type", str(device)) != "cuda":
        return None, f"device {device} is not a GPU"
    import torch

    index = device.index if device.index is not None else 0
    uuid = ""
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        try:
            uuid = "GPU-" + str(torch.cuda.get_device_properties(index).uuid)
        except Exception:  # noqa: BLE001 - older torch: fall back to the index
            uuid = ""
    try:
        meter = NvmlShareMeter(index, uuid=uuid, nvml=nvml, sync=lambda: torch.cuda.synchronize(device))
        meter.start()
        meter.read()
    except MeterError as err:
        return None, str(err)
    return meter, ""
