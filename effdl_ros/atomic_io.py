"""Crash-safe file writes and safe checkpoint loading, in one place.

Why: a robot can lose power or be killed mid-write; a reader (a node hot-swapping weights, a user
reading a report) must see the old file or the new one, never half of one. And a model path can
arrive in a message, so loading must neither unpickle arbitrary objects nor read outside the model
folder. Every writer and checkpoint loader in the package goes through these few functions.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional, Union

from effdl_ros.errors import DataError

PathLike = Union[str, Path]


def _atomic_write(path: PathLike, write: Callable[[BinaryIO], None], mode: int) -> Path:
    """Run ``write(fh)`` on a temp file beside ``path``, fsync, chmod, os.replace, fsync the folder.

    The temp file sits in the same folder (os.replace is only atomic within one file system), is
    fsynced before the rename, and the folder is fsynced after it so the rename itself survives a
    power cut. On any failure, even KeyboardInterrupt, the temp file is removed; a SIGKILL can leave
    one behind (named ``.<name>.*.tmp``), never a half-written ``path``. Such leftovers are removed
    by the next successful write of the same path (see _remove_stale_temps).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename durable; some file systems refuse fsync on a folder, which is fine
        dir_fd = os.open(str(path.parent), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    _remove_stale_temps(path)
    return path


#: a temp file this old is a leftover of a killed writer, not a write in progress (its mtime moves
#: while it is written)
STALE_TEMP_AGE_S = 600.0


def _remove_stale_temps(path: Path, older_than_s: float = STALE_TEMP_AGE_S) -> int:
    """Delete ``.<name>.*.tmp`` files beside ``path`` untouched for ``older_than_s``: a robot whose
    trainer is killed mid-save again and again would otherwise fill its disk with partial checkpoints.
    Younger ones may belong to another process writing the same path and are left alone."""
    removed = 0
    cutoff = time.time() - older_than_s
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
                removed += 1
        except OSError:
            pass  # gone meanwhile, or not ours to delete: never fail a write that succeeded
    return removed


def atomic_write_bytes(path: PathLike, data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never a mix.

    ``mode`` defaults to 0644 because mkstemp makes 0600 and these files are meant to be read by
    other users (a node, a person reading a report).
    """
    return _atomic_write(path, lambda fh: fh.write(data), mode)


def atomic_save_figure(fig: Any, path: PathLike, *, dpi: Optional[float] = None, fmt: Optional[str] = None,
                       mode: int = 0o644) -> Path:
    """A matplotlib figure laid out tight, rendered to memory, closed and written atomically: a plot is
    a result file like the JSON beside it. ``fmt`` defaults to the file's suffix (png without one)."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt or Path(path).suffix.lstrip(".") or "png", dpi=dpi)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue(), mode=mode)


def atomic_write_text(path: PathLike, text: str, *, mode: int = 0o644) -> Path:
    """atomic_write_bytes for text, UTF-8 (JSON, Markdown, JSON lines)."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_torch_save(obj: Any, path: PathLike, *, mode: int = 0o644) -> Path:
    """torch.save, atomically.

    torch.save streams straight into the temp file rather than into memory first: a checkpoint is
    not held twice in RAM, and the temp-file window covers the whole write, which is what the
    reliability save-kill trial (effdl_ros.graph.savekill) counts as a kill landing mid-write.
    A save that fails part-way removes its temp file and leaves the old checkpoint untouched.
    """
    import torch

    return _atomic_write(path, lambda fh: torch.save(obj, fh), mode)


def path_inside(path: PathLike, model_dir: PathLike, *, what: str = "model file") -> Path:
    """``path`` resolved (symlinks and ``..`` followed); DataError when it lies outside ``model_dir``.

    A relative path is taken relative to ``model_dir``. Resolving before the check is what stops a
    ``../`` escape or a symlink inside the folder that points elsewhere on the robot.
    """
    root = Path(model_dir).resolve()
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    try:
        resolved.relative_to(root)
    except ValueError:
        raise DataError(f"{what} {path} lies outside the model directory {root}; refused") from None
    return resolved


def safe_torch_load(path: PathLike, *, model_dir: Optional[PathLike] = None, map_location: Any = "cpu",
                    what: str = "model file") -> Any:
    """torch.load(weights_only=True): tensors and plain containers only, never arbitrary objects.

    With ``model_dir`` the path must lie inside it (see path_inside). A missing file, or one that is
    truncated, corrupt or holds a refused type, is one DataError sentence naming the file, so a node
    can report it and keep serving its old model.
    """
    import torch

    p = path_inside(path, model_dir, what=what) if model_dir is not None else Path(path)
    if not p.is_file():
        raise DataError(f"{what} {p} does not exist")
    try:
        return torch.load(str(p), map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated zip, bad pickle, refused type: one problem
        raise DataError(f"{what} {p} is truncated or corrupt ({type(err).__name__})") from None


def _plain_json(obj: Any) -> Any:
    """Valid JSON only: NaN becomes null, +-inf the strings "inf" / "-inf", numpy scalars numbers."""
    if isinstance(obj, float) or type(obj).__module__ == "numpy" and hasattr(obj, "item"):
        value = obj.item() if hasattr(obj, "item") and not isinstance(obj, float) else obj
        if isinstance(value, float) and not math.isfinite(value):
            return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
        if not isinstance(value, (list, dict)):
            return value
        obj = value
    if isinstance(obj, dict):
        return {str(k): _plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain_json(v) for v in obj]
    return obj


def atomic_write_json(path: PathLike, data: Any, *, require_folder: bool = False) -> Path:
    """Benchmark and report JSON, written atomically; other objects (paths, ...) become strings.

    :param require_folder: refuse (DataError) rather than create a missing parent folder.
    """
    target = Path(path)
    if require_folder and not target.parent.is_dir():
        raise DataError(f"folder {target.parent} for {target.name} does not exist")
    return atomic_write_text(target, json.dumps(_plain_json(data), indent=1, default=str))
