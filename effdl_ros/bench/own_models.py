"""effdl_ros's own networks as dlbench workloads: inference and a training step at their input shapes.

Each builder imports its capability lazily; a network that cannot be built (module missing or its
constructor changed) is reported as skipped with the reason, never a crash of the whole run.
The training step uses a surrogate loss (mean square of every float output) because each model's own
objective needs its own targets; forward, backward and the SGD update cost the same work, so the time
per mini-batch is what DLBench measures, not the model's training recipe.
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

from effdl_ros.errors import ConfigError

#: name -> (input shape without batch, default batch, what it is)
OWN = {
    "ddi": ((1, 28, 28), 32, "DDI gated ResNet with early exits (effdl_ros.ddi), MNIST-shaped"),
    "e2resnet": ((1, 28, 28), 32, "E2-Train CIFAR-style ResNet-20 with SLU gates (effdl_ros.training)"),
    "segnet": ((3, 240, 320), 2, "TinySegNet LR-ASPP segmenter (effdl_ros.segmentation), 320x240"),
    "roam": ((3, 161, 161), 4, "ROAM tracker's learnable ResNet-18 backbone option on a 161x161 search window (effdl_ros.tracking)"),
}


def _build_ddi():
    from effdl_ros.ddi.model import DDIConfig, DDINet

    return DDINet(DDIConfig())


def _build_e2resnet():
    from effdl_ros.training.resnet import ResNetConfig, build

    return build(ResNetConfig(gates=True))


def _build_segnet():
    from effdl_ros.segmentation.network import TinySegNet

    return TinySegNet()


def _build_roam():
    import torch.nn as nn

    from effdl_ros.tracking.roam import RoamConfig, RoamNet

    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # the learnable ResNet-18 stem (the default hand-crafted features have nothing to train)
            self.net = RoamNet(RoamConfig(backbone="resnet18_layer1"))

        def forward(self, x):
            return self.net.features(x)

    return Features()


BUILDERS: Dict[str, Callable] = {"ddi": _build_ddi, "e2resnet": _build_e2resnet, "segnet": _build_segnet,
                                 "roam": _build_roam}


def _float_outputs(out):
    import torch

    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _float_outputs(o)]
    return []


def surrogate_loss(model, x, _y):
    """Mean square of every float output that carries a gradient (see the module docstring)."""
    outs = [t for t in _float_outputs(model(x)) if t.requires_grad]
    if not outs:
        raise ConfigError("the model returned no output with a gradient, so it cannot be trained")
    return sum(t.float().square().mean() for t in outs)


def make_own_workload(name: str, batch: int, *, pool_size: int = 2, seed: int = 0):
    """A dlbench Workload for one of effdl_ros's networks; raises ConfigError when it cannot be built."""
    import torch

    from effdl_ros.bench.workload import Workload

    if name not in OWN:
        raise ConfigError(f"unknown own workload {name!r}; known: {', '.join(OWN)}")
    shape, _, note = OWN[name]
    try:
        model = BUILDERS[name]()
    except Exception as err:  # noqa: BLE001 - another capability's module may be absent or changed
        raise ConfigError(f"cannot build {name} ({type(err).__name__}: {err})") from None
    g = torch.Generator().manual_seed(seed)
    pool = [(torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=g), None)
            for _ in range(pool_size)]
    scale = 1.0 if name == "roam" else 1.0 / 255.0  # ROAM normalises 0..255 pixels itself

    def feed(b, device):
        return b[0].to(device).float().mul_(scale), None

    return Workload(name, model, pool, feed, surrogate_loss, batch, note=note + "; surrogate loss")


def default_batch(name: str) -> int:
    return OWN[name][1]


def shapes() -> Dict[str, Tuple[int, ...]]:
    return {k: v[0] for k, v in OWN.items()}
