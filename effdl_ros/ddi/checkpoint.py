"""Saving and safely loading DDI checkpoints (state dict + config + metadata, no pickled objects).

Loading uses torch.load(weights_only=True) only, refuses paths outside an allowed model directory
(a ModelUpdate message names a path; it must not point anywhere on the robot), and turns a missing,
truncated or corrupt file into one DataError sentence so a node can keep its old model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from effdl_ros.atomic_io import atomic_torch_save, path_inside, safe_torch_load
from effdl_ros.errors import DataError

FORMAT = "effdl_ros.ddi/1"


def save_checkpoint(path: Union[str, Path], model, meta: Dict[str, Any]) -> Path:
    """Write atomically (see effdl_ros.atomic_io): a reader sees the old file or the new one."""
    payload = {"format": FORMAT, "config": model.config.to_dict(), "meta": dict(meta),
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    return atomic_torch_save(payload, path)


def load_checkpoint(path: Union[str, Path], model_dir: Optional[Union[str, Path]] = None) -> Tuple[Any, Dict]:
    """(DDINet in eval mode, meta) from a checkpoint; DataError for any bad file."""
    from effdl_ros.ddi.model import DDIConfig, DDINet

    path = path_inside(path, model_dir) if model_dir is not None else Path(path)
    payload = safe_torch_load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"model file {path} is not a DDI checkpoint (format {FORMAT!r} expected)")
    try:
        config = DDIConfig.from_dict(payload["config"])
        model = DDINet(config)
        model.load_state_dict(payload["state_dict"], strict=True)
    except Exception as err:  # noqa: BLE001
        raise DataError(f"model file {path} does not match its architecture ({str(err).splitlines()[0]})") from None
    meta = payload.get("meta") or {}
    return model.eval(), dict(meta)
