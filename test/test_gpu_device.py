"""Nodes on the GPU (issue 19): the device parameter, the NVML attribution arithmetic, fp16 vs fp32.

CPU-only: CUDA is faked where a test needs its absence or presence; the fp16 test needs a real GPU and
skips without one.
"""
import types

import numpy as np
import pytest
import torch

from effdl_ros.device import check_fp16, check_spec, move_model, resolve_device, to_device
from effdl_ros.energy.accountant import Accountant
from effdl_ros.energy.gpu import NvmlShareMeter, ProcessSample, shares, split_energy
from effdl_ros.errors import ConfigError

CUDA = torch.cuda.is_available()


# ------------------------------------------------------------------------------------- device parsing

def test_device_parses_cpu_auto_cuda_and_refuses_missing_cuda_in_one_sentence():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto", cuda_available=False) == torch.device("cpu")
    assert resolve_device("auto", cuda_available=True) == torch.device("cuda", 0)
    assert resolve_device("cuda:1", cuda_available=True, device_count=2) == torch.device("cuda", 1)
    assert resolve_device(" CUDA ", cuda_available=True, device_count=1) == torch.device("cuda", 0)
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError) as err:
            resolve_device(spec, what="/ddi: parameter 'device'", cuda_available=False)
        text = str(err.value)
        assert text.startswith("/ddi: parameter 'device' asks for cuda") and "no CUDA device" in text
        assert text.count(". ") == 0 and "\n" not in text        # one sentence
    with pytest.raises(ConfigError, match="sees 1 CUDA device"):
        resolve_device("cuda:1", cuda_available=True, device_count=1)
    for bad in ("gpu", "cuda:x", "cuda:-1", "", "tpu:0"):
        assert check_spec(bad) is not None
        with pytest.raises(ConfigError, match="must be cpu"):
            resolve_device(bad)


def test_the_device_parameter_is_checked_before_any_node_starts():
    from effdl_ros.nodekit.parameters import DEVICE

    assert DEVICE.default == "cpu" and DEVICE.problem("cuda:1") is None and DEVICE.problem("auto") is None
    assert "must be cpu" in DEVICE.problem("cuda:x") and "is STRING" in DEVICE.problem(0)


def test_fp16_is_refused_on_the_cpu():
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        check_fp16(True, torch.device("cpu"), what="/seg: parameter 'fp16'")
    check_fp16(False, torch.device("cpu"))


def test_to_device_on_the_cpu_is_the_same_memory_and_move_model_reaches_nested_tensors():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = to_device(a, torch.device("cpu"))
    a[0, 0] = 99.0
    assert t[0, 0] == 99.0                                  # no copy on the CPU: a cpu node is unchanged

    class Holder:
        def __init__(self):
            self.w = [torch.ones(2), None]
            self.d = {"b": torch.zeros(1)}
            self.n = 3

    h = move_model(Holder(), torch.device("meta"))
    assert h.w[0].device.type == "meta" and h.d["b"].device.type == "meta" and h.w[1] is None and h.n == 3


def test_nodes_refuse_a_missing_cuda_with_the_parameter_named(tmp_path, monkeypatch):
    from effdl_ros.ddi.checkpoint import save_checkpoint
    from effdl_ros.ddi.model import DDIConfig, DDINet
    from effdl_ros.nodes.ddi import DdiNode
    from effdl_ros.runtime import Parameter
    from effdl_ros.runtime.testing import InprocGraph

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = tmp_path / "m.pt"
    save_checkpoint(path, DDINet(DDIConfig(widths=(4, 8, 8), blocks=(1, 1, 1), image_size=16, exit_channels=4)),
                    {"mean": [0.5], "std": [0.25], "classes": [str(i) for i in range(10)]})
    with InprocGraph(simulated=True) as g:
        with pytest.raises(ConfigError, match=r"/ddi: parameter 'device' asks for cuda:0, but torch sees no CUDA"):
            g.add(DdiNode, parameter_overrides=[Parameter("model_path", value=str(path)),
                                               Parameter("device", value="cuda:0")])
        node = g.add(DdiNode, parameter_overrides=[Parameter("model_path", value=str(path)),
                                                  Parameter("device", value="auto")])
        assert node.device == torch.device("cpu") and node.acct.estimate == "ops"   # cpu: unchanged


def test_a_ddi_node_on_cpu_gives_the_engines_own_answer(tmp_path):
    """device=cpu (explicit) classifies exactly as the engine run directly on the preprocessed frame."""
    from effdl_ros.ddi.checkpoint import save_checkpoint
    from effdl_ros.ddi.data import preprocess
    from effdl_ros.ddi.engine import DDIEngine
    from effdl_ros.ddi.model import DDIConfig, DDINet
    from effdl_ros.nodes.ddi import DdiNode
    from effdl_ros.runtime import Node, Parameter
    from effdl_ros.runtime.images import cv2_to_imgmsg
    from effdl_ros.runtime.messages import Classification, Image
    from effdl_ros.runtime.qos import qos_profile_sensor_data
    from effdl_ros.runtime.testing import InprocGraph

    torch.manual_seed(3)
    model = DDINet(DDIConfig(widths=(4, 8, 8), blocks=(1, 1, 1), image_size=16, exit_channels=4))
    meta = {"mean": [0.5], "std": [0.25], "classes": [str(i) for i in range(10)]}
    save_checkpoint(tmp_path / "m.pt", model, meta)
    img = np.random.default_rng(0).integers(0, 255, (20, 20), dtype=np.uint8)
    expected = torch.softmax(DDIEngine(model.eval()).run(preprocess(img, [0.5], [0.25], 16)).logits, 0)

    class Peer(Node):
        def __init__(self, **kw):
            super().__init__("peer", **kw)
            self.got = []
            self.create_subscription(Classification, "ddi/classification", self.got.append, 10)
            self.pub = self.create_publisher(Image, "image", qos_profile_sensor_data)

    with InprocGraph(simulated=True) as g:
        g.add(DdiNode, parameter_overrides=[Parameter("model_path", value=str(tmp_path / "m.pt")),
                                           Parameter("device", value="cpu"), Parameter("top_k", value=10)])
        peer = g.add(Peer)
        g.step(0.05)
        peer.pub.publish(cv2_to_imgmsg(img, "mono8"))
        g.step(0.05)
    got = {int(r.class_id): r.score for r in peer.got[0].results}
    assert got == pytest.approx({i: float(p) for i, p in enumerate(expected)}, abs=1e-6)


# ----------------------------------------------------------------------------------- NVML attribution

def test_shares_and_split_conserve_the_device_energy():
    samples = [ProcessSample(1, 10, 60.0), ProcessSample(2, 10, 20.0), ProcessSample(1, 20, 30.0),
               ProcessSample(2, 20, 10.0)]
    assert shares(samples) == pytest.approx({1: 0.75, 2: 0.25})
    split = split_energy(8.0, samples)
    assert split == pytest.approx({1: 6.0, 2: 2.0}) and sum(split.values()) == pytest.approx(8.0)
    assert shares([ProcessSample(1, 0, 0.0)]) == {}


class FakeNvml(types.SimpleNamespace):
    """One GPU shared by processes: an energy counter (mJ) and per-process SM samples the test sets."""

    class NVMLError_NotFound(Exception):
        pass

    def __init__(self):
        super().__init__(energy_mj=1_000_000, samples=[], inits=0)

    def nvmlInit(self):
        self.inits += 1

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, i):
        return ("gpu", i)

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        return self.energy_mj

    def nvmlDeviceGetProcessUtilization(self, h, last_ts):
        new = [s for s in self.samples if s.timeStamp > last_ts]
        if not new:
            raise self.NVMLError_NotFound("Not Found")
        return new

    def add(self, pid, ts, sm):
        self.samples.append(types.SimpleNamespace(pid=pid, timeStamp=ts, smUtil=sm, memUtil=0))


def test_two_processes_sharing_one_gpu_split_its_energy_by_gpu_time():
    nvml = FakeNvml()
    synced = []
    t = [0.0]
    a = NvmlShareMeter(0, nvml=nvml, pid=101, sync=lambda: synced.append("a"), clock=lambda: t[0])
    b = NvmlShareMeter(0, nvml=nvml, pid=202, clock=lambda: t[0])
    acct_a = Accountant("/a", meter=a, clock=lambda: t[0])
    acct_b = Accountant("/b", meter=b, clock=lambda: t[0])
    with acct_a.item():
        with acct_b.item():
            nvml.add(101, 1_000, 75.0)    # a used 3x the SM time of b while the device drew 20 J
            nvml.add(202, 1_000, 25.0)
            nvml.energy_mj += 20_000
            t[0] += 0.5
    ra, rb = acct_a.report(), acct_b.report()
    assert ra.energy_j == pytest.approx(15.0) and rb.energy_j == pytest.approx(5.0)
    assert ra.energy_j + rb.energy_j == pytest.approx(20.0)       # nothing counted twice
    assert ra.source == rb.source == "measured" and ra.meter == "nvml:0:energy*share"
    assert synced and all(s == "a" for s in synced)               # the device is synced before reads
    # 3 s later alone on the GPU (b's samples left the 2 s window): a gets all of the next 4 J
    nvml.add(101, 3_001_000, 50.0)
    with acct_a.item():
        nvml.energy_mj += 4_000
        t[0] += 0.1
    assert acct_a.report().energy_j == pytest.approx(15.0 + 4.0)   # energy_j is cumulative


def test_a_node_on_a_gpu_gets_the_nvml_meter_and_reports_measured(monkeypatch):
    from effdl_ros.energy.gpu import meter_for_device

    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: synced.append(d))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    nvml = FakeNvml()
    meter, why = meter_for_device(torch.device("cuda", 0), nvml=nvml)
    assert why == "" and meter.name == "nvml:0:energy" and synced == [torch.device("cuda", 0)] * 2
    acct = Accountant("/seg", meter=meter)
    with acct.item():
        nvml.energy_mj += 1_500
    r = acct.report()
    assert r.source == "measured" and r.energy_j == pytest.approx(1.5) and acct.estimate == "meter"
    assert meter_for_device(torch.device("cpu"), nvml=nvml) == (None, "device cpu is not a GPU")


def test_a_process_nvml_never_names_is_charged_the_whole_device_and_says_so():
    nvml = FakeNvml()
    m = NvmlShareMeter(0, nvml=nvml, pid=999)      # e.g. a container's PID namespace
    m.start()
    nvml.add(12345, 1_000, 80.0)
    nvml.energy_mj += 3_000
    r = m.read()
    assert r.energy_j == pytest.approx(3.0) and m.name == "nvml:0:energy"


# --------------------------------------------------------------------------------------- fp16 vs fp32

@pytest.mark.skipif(not CUDA, reason="fp16 runs under CUDA autocast; no CUDA device here")
def test_fp16_and_fp32_agree_on_a_fixed_input():
    """Tolerance: softmax scores within 0.02 and the same top class for DDI; >= 98 % equal labels for the
    segmenter (half precision keeps ~3 decimal digits)."""
    from effdl_ros.ddi.engine import DDIEngine
    from effdl_ros.ddi.model import DDIConfig, DDINet
    from effdl_ros.device import autocast
    from effdl_ros.segmentation.inference import predict
    from effdl_ros.segmentation.network import build, config_for

    dev = torch.device("cuda")
    torch.manual_seed(0)
    engine = move_model(DDIEngine(DDINet(DDIConfig(widths=(8, 16, 16), blocks=(1, 1, 1), image_size=16,
                                                   exit_channels=4)).eval()), dev)
    x = torch.randn(1, 1, 16, 16, device=dev)
    p32 = torch.softmax(engine.run(x).logits.float(), 0)
    with autocast(dev, True):
        p16 = torch.softmax(engine.run(x).logits.float(), 0)
    assert (p16 - p32).abs().max().item() < 0.02 and int(p16.argmax()) == int(p32.argmax())
    cfg = config_for()
    model = build(cfg).eval().to(dev)
    rgb = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    agree = (predict(model, cfg, rgb, device=dev) == predict(model, cfg, rgb, device=dev, fp16=True)).mean()
    assert agree >= 0.98
