"""How to start each node for a fuzz or kill run without the shipped models: tiny random-weight models
written into a scratch model directory, so every node module can be exercised on a fresh checkout.

`node_setup(executable, workdir)` -> NodeSetup. A node module without an entry here starts with its
declared defaults (plus the pipeline file's parameters, when given): new nodes are covered without
editing this file, as long as their defaults start.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional

DDI_META = {"mean": [0.5], "std": [0.25], "classes": [str(i) for i in range(10)], "dataset": "fuzz (random weights)"}


@dataclass
class NodeSetup:
    parameters: Dict[str, Any] = field(default_factory=dict)
    model_dir: Optional[Path] = None     # where model updates must point (bad files go here)
    model_file: Optional[Path] = None    # a good checkpoint, truncated/corrupted for bad files


def _tiny_ddi(path: Path) -> Path:
    import torch

    from effdl_ros.ddi.checkpoint import save_checkpoint
    from effdl_ros.ddi.model import DDIConfig, DDINet

    torch.manual_seed(0)
    save_checkpoint(path, DDINet(DDIConfig(widths=(4, 8, 8), blocks=(1, 1, 1), image_size=12,
                                           exit_channels=4)), DDI_META)
    return path


def _tiny_segmentation(path: Path) -> Path:
    import torch

    from effdl_ros.segmentation.network import TinySegNet, config_for, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(path, TinySegNet(11, width=0.25), config_for(11, 0.25, (32, 48)))
    return path


def _ddi(work: Path) -> NodeSetup:
    models = work / "models"
    model = _tiny_ddi(models / "ddi.pt")
    return NodeSetup({"model_path": str(model)}, models, model)


def _segmentation(work: Path) -> NodeSetup:
    models = work / "models"
    model = _tiny_segmentation(models / "seg.pt")
    return NodeSetup({"model_path": str(model), "threads": 1}, models, model)


def _trainer(work: Path) -> NodeSetup:
    models = work / "models"
    model = _tiny_ddi(models / "ddi.pt")
    return NodeSetup({"model_path": str(model), "min_train_samples": 8, "batch_size": 4, "validate_every": 4,
                      "min_holdout": 2, "holdout_every": 4, "steps_per_second": 5.0, "pseudo_threshold": 0.5},
                     models, model)


def _tracker(work: Path) -> NodeSetup:
    """A random-weight ROAM checkpoint in the layout effdl_ros.tracking.tracker.load_model reads."""
    import torch

    from effdl_ros.tracking.tracker import random_model

    model = random_model(0)
    state = {f"net.{k}": v for k, v in model.net.state_dict().items()}
    state.update({f"init.{k}": v for k, v in model.init.state_dict().items()})
    state.update({f"opt.{k}": v for k, v in model.optimizer.state_dict().items()})
    path = work / "models" / "roam.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": dataclasses.asdict(model.net.config), "state_dict": state}, path)
    return NodeSetup({"model_path": str(path), "threads": 1}, path.parent, path)


def _energy_monitor(work: Path) -> NodeSetup:
    return NodeSetup({"meter": "none"})


def _source(work: Path) -> NodeSetup:
    return NodeSetup({"rate_hz": 1.0})


SETUPS: Dict[str, Callable[[Path], NodeSetup]] = {
    "ddi": _ddi, "segmentation": _segmentation, "trainer": _trainer, "tracker": _tracker,
    "energy_monitor": _energy_monitor,
    "source": _source,
}


def node_setup(executable: str, workdir: Path, *, pipeline_parameters: Optional[Dict[str, Any]] = None) -> NodeSetup:
    """Parameters (and the model directory) to start `executable` for a fuzz run; a pipeline file's
    parameters apply, except model paths: the fuzz writes bad files into the model directory, so
    that is always a scratch folder with our tiny models, never the package's models/."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    setup = SETUPS[executable](workdir) if executable in SETUPS else NodeSetup()
    if pipeline_parameters:
        merged = dict(setup.parameters)
        merged.update({k: v for k, v in pipeline_parameters.items()
                       if k not in ("model_path", "model_dir", "out_dir") or setup.model_dir is None})
        setup.parameters = merged
    if setup.model_dir is None and "model_dir" in setup.parameters and setup.parameters["model_dir"]:
        setup.model_dir = Path(setup.parameters["model_dir"])
    return setup
