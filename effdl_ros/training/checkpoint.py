"""Checkpoints that a crash cannot break, and loading that never unpickles arbitrary objects.

Save: write to a temporary file in the SAME folder, flush + fsync, then os.replace (atomic on POSIX
and Windows) and fsync the folder, so a reader sees the old file or the new one, never half of one.
Load: torch.load(weights_only=True); a missing, truncated or corrupt file is one DataError naming it;
with ``model_dir`` the path must lie inside that folder (a ModelUpdate cannot point anywhere else).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from effdl_ros.errors import DataError

PathLike = Union[str, Path]
FORMAT = "effdl_ros.training/1"


def save_checkpoint(path: PathLike, state_dict: Dict[str, torch.Tensor], config: Dict[str, Any],
                    meta: Optional[Dict[str, Any]] = None) -> Path:
    """Atomically write {format, state_dict, config, meta} to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
               "config": config, "meta": dict(meta or {})}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a model file is meant to be read by other users
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(str(path.parent), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def check_inside(path: PathLike, model_dir: PathLike) -> Path:
    """The resolved path, or a DataError when it lies outside ``model_dir`` (symlinks resolved)."""
    resolved = Path(path).resolve()
    root = Path(model_dir).resolve()
    if resolved != root and root not in resolved.parents:
        raise DataError(f"model file {path} lies outside the model directory {model_dir}")
    return resolved


def load_checkpoint(path: PathLike, *, model_dir: Optional[PathLike] = None) -> Dict[str, Any]:
    """Load a checkpoint written by save_checkpoint (or a bare state dict); one DataError on failure."""
    p = check_inside(path, model_dir) if model_dir is not None else Path(path)
    if not p.is_file():
        raise DataError(f"model file {path} does not exist")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated zip, bad pickle, refused type, ...
        raise DataError(f"model file {path} is truncated or corrupt ({type(err).__name__})") from None
    if isinstance(obj, dict) and "state_dict" in obj:
        if not isinstance(obj["state_dict"], dict):
            raise DataError(f"model file {path} has no tensor state dict")
        obj.setdefault("config", {})
        obj.setdefault("meta", {})
        return obj
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"format": "state_dict", "state_dict": obj, "config": {}, "meta": {}}
    raise DataError(f"model file {path} is not a checkpoint (no state_dict inside)")
