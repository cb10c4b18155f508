"""Where the package's shared files (msg/, config/, launch/, models/, samples/) live.

Three installs put them in three places: a source checkout (pip install -e), pip's data_files
(<prefix>/share/effdl_ros) and colcon's install space (ament index). One lookup serves all three.
"""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

PACKAGE = "effdl_ros"


@functools.lru_cache(maxsize=1)
def share_dir() -> Path:
    """The folder holding msg/, config/, launch/, models/ and samples/."""
    source_root = Path(__file__).resolve().parents[1]
    candidates = [source_root, Path(sys.prefix) / "share" / PACKAGE]
    try:  # a colcon install space
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # noqa: BLE001 - ament is optional
        pass
    for candidate in candidates:
        if (candidate / "msg").is_dir() and (candidate / "config").is_dir():
            return candidate
    raise FileNotFoundError(
        f"cannot find {PACKAGE}'s shared files (msg/, config/) in any of: "
        + ", ".join(str(c) for c in candidates)
    )


def share_path(*parts: str) -> Path:
    return share_dir().joinpath(*parts)


def shared_data_dir() -> Path:
    """The team's real data (../shared/data beside the checkout), or EFFDL_ROS_DATA."""
    env = os.environ.get("EFFDL_ROS_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def resolve_path(spec: str) -> Path:
    """A path from a parameter: as given when it exists, else relative to the shared files
    (so `models/ddi_mnist.pt` and `samples/vtest` work from any directory). Not checked to exist."""
    path = Path(spec).expanduser()
    if path.exists() or path.is_absolute():
        return path.resolve()  # absolute: a model_dir derived from it must not stay relative
    try:
        shared = share_path(spec)
    except FileNotFoundError:
        return path
    return shared if shared.exists() else path
