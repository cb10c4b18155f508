"""Checkpoints that a crash cannot break, and loading that never unpickles arbitrary objects.

Save and load go through effdl_ros.atomic_io: temp file in the same folder, fsync, rename, so a
reader sees the old file or the new one; torch.load(weights_only=True), a missing, truncated or
corrupt file is one DataError naming it; with ``model_dir`` the path must lie inside that folder
(a ModelUpdate cannot point anywhere else).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from effdl_ros.atomic_io import atomic_torch_save, path_inside, safe_torch_load
from effdl_ros.errors import DataError

PathLike = Union[str, Path]
FORMAT = "effdl_ros.training/1"


def save_checkpoint(path: PathLike, state_dict: Dict[str, torch.Tensor], config: Dict[str, Any],
                    meta: Optional[Dict[str, Any]] = None) -> Path:
    """Atomically write {format, state_dict, config, meta} to ``path``; returns the path."""
    payload = {"format": FORMAT, "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
               "config": config, "meta": dict(meta or {})}
    return atomic_torch_save(payload, path)


def load_checkpoint(path: PathLike, *, model_dir: Optional[PathLike] = None) -> Dict[str, Any]:
    """Load a checkpoint written by save_checkpoint (or a bare state dict); one DataError on failure.

    A relative ``path`` is relative to the working directory (not to ``model_dir``), as it always was.
    """
    p = path_inside(Path(path).absolute(), model_dir) if model_dir is not None else Path(path)
    obj = safe_torch_load(p)
    if isinstance(obj, dict) and "state_dict" in obj:
        if not isinstance(obj["state_dict"], dict):
            raise DataError(f"model file {path} has no tensor state dict")
        obj.setdefault("config", {})
        obj.setdefault("meta", {})
        return obj
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"format": "state_dict", "state_dict": obj, "config": {}, "meta": {}}
    raise DataError(f"model file {path} is not a checkpoint (no state_dict inside)")


def load_gated_resnet(path: PathLike, *, model_dir: Optional[PathLike] = None):
    """(GatedResNet in eval mode, meta) from a checkpoint; DataError if the file does not hold one."""
    from effdl_ros.training.resnet import GatedResNet, ResNetConfig

    payload = load_checkpoint(path, model_dir=model_dir)
    try:
        model = GatedResNet(ResNetConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except Exception as err:  # noqa: BLE001 - any mismatch is the same user-facing problem
        raise DataError(f"model file {path} is not a GatedResNet checkpoint "
                        f"({str(err).splitlines()[0]})") from None
    return model.eval(), dict(payload["meta"])
