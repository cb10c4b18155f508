"""Saving and safely loading DDI checkpoints (state dict + config + metadata, no pickled objects).

Loading uses torch.load(weights_only=True) only, refuses paths outside an allowed model directory
(a ModelUpdate message names a path; it must not point anywhere on the robot), and turns a missing,
truncated or corrupt file into one DataError sentence so a node can keep its old model.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from effdl_ros.errors import DataError

FORMAT = "effdl_ros.ddi/1"


def save_checkpoint(path: Union[str, Path], model, meta: Dict[str, Any]) -> Path:
    """Write atomically: temp file in the same folder, fsync, rename."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "config": model.config.to_dict(), "meta": dict(meta),
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)       # mkstemp makes 0600; a model file is meant to be readable
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:                           # make the rename itself durable
        dir_fd = os.open(str(path.parent), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def resolve_inside(path: Union[str, Path], model_dir: Union[str, Path]) -> Path:
    """The resolved path, or a DataError when it lies outside model_dir (symlinks resolved)."""
    root = Path(model_dir).resolve()
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = candidate.resolve()
    try:
        resolved.relative_to(root)
    except ValueError:
        raise DataError(f"model file {path} lies outside the model directory {root}; refused") from None
    return resolved


def load_checkpoint(path: Union[str, Path], model_dir: Optional[Union[str, Path]] = None) -> Tuple[Any, Dict]:
    """(DDINet in eval mode, meta) from a checkpoint; DataError for any bad file."""
    import torch

    from effdl_ros.dynamic.model import DDIConfig, DDINet

    path = resolve_inside(path, model_dir) if model_dir is not None else Path(path)
    if not path.is_file():
        raise DataError(f"model file {path} does not exist")
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        raise DataError(f"model file {path} is truncated or corrupt ({type(err).__name__})") from None
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
