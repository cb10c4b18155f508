"""Options and output every command shares: `--json OUT` and writing it.

Each command that produces figures takes `--json OUT` (add_json_option) and writes them with
write_json: atomically (temp file, fsync, rename), NaN/paths made plain, one "wrote OUT" line.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional

from effdl_ros.atomic_io import atomic_write_json


def add_json_option(p: argparse.ArgumentParser, help: str = "write the results to this JSON file",
                    dest: str = "json") -> None:
    """`--json OUT` (default: no file)."""
    p.add_argument("--json", dest=dest, default=None, metavar="OUT", help=help)


def write_json(path: Any, data: Any, *, require_folder: bool = False, say: Optional[str] = "wrote") -> Path:
    """Write `data` to `path` as JSON atomically; print "<say> PATH" unless say is None."""
    out = atomic_write_json(path, data, require_folder=require_folder)
    if say:
        print(f"{say} {out}")
    return out
