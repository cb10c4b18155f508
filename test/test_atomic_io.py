"""effdl_ros.atomic_io: a failed write keeps the old file, path checks, safe checkpoint loading."""
import os
import time

import pytest
import torch

from effdl_ros import atomic_io
from effdl_ros.atomic_io import atomic_torch_save, atomic_write_bytes, atomic_write_text, path_inside, safe_torch_load
from effdl_ros.errors import DataError


def test_write_creates_folders_and_is_world_readable(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "b" / "r.json", '{"x": "\u00e9"}')
    assert path.read_text(encoding="utf-8") == '{"x": "\u00e9"}'
    assert path.stat().st_mode & 0o777 == 0o644
    assert os.listdir(path.parent) == ["r.json"]


@pytest.mark.parametrize("target", ["replace", "fsync"])
def test_a_write_that_fails_half_way_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch, target):
    path = atomic_write_bytes(tmp_path / "m.bin", b"old")

    def boom(*_a, **_k):
        raise KeyboardInterrupt("killed")  # BaseException: cleanup must not rely on `except Exception`

    monkeypatch.setattr(atomic_io.os, target, boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new, half written")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["m.bin"]


def test_a_torch_save_that_dies_half_way_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = atomic_torch_save({"w": torch.ones(2)}, tmp_path / "m.pt")

    def dying_save(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04 half a zip")  # some bytes reach the temp file, then it fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(RuntimeError):
        atomic_torch_save({"w": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(safe_torch_load(path)["w"], torch.ones(2))
    assert os.listdir(tmp_path) == ["m.pt"]


def test_path_inside_resolves_relative_paths_against_the_model_dir(tmp_path):
    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    assert path_inside("sub/m.pt", models) == (models / "sub" / "m.pt").resolve()
    assert path_inside(models / "sub" / ".." / "m.pt", models) == (models / "m.pt").resolve()


def test_path_inside_refuses_escapes_and_outward_symlinks(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    secret = tmp_path / "secret.pt"
    secret.write_bytes(b"x")
    for bad in ("../secret.pt", models / ".." / "secret.pt", secret, "/etc/passwd"):
        with pytest.raises(DataError, match="outside the model directory"):
            path_inside(bad, models)
    (models / "link.pt").symlink_to(secret)
    with pytest.raises(DataError, match="link.pt.*outside the model directory"):
        path_inside(models / "link.pt", models)
    with pytest.raises(DataError, match="outside"):
        safe_torch_load("link.pt", model_dir=models)


def test_safe_load_round_trip(tmp_path):
    atomic_torch_save({"state_dict": {"w": torch.arange(3)}, "config": {"a": 1}}, tmp_path / "m.pt")
    blob = safe_torch_load("m.pt", model_dir=tmp_path)
    assert torch.equal(blob["state_dict"]["w"], torch.arange(3)) and blob["config"] == {"a": 1}


def test_safe_load_missing_truncated_and_junk_files_are_one_data_error(tmp_path):
    good = atomic_torch_save({"w": torch.randn(64)}, tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 10)
    cases = {"trunc.pt": "truncated or corrupt", "empty.pt": "truncated or corrupt",
             "junk.pt": "truncated or corrupt", "missing.pt": "does not exist"}
    for name, words in cases.items():
        with pytest.raises(DataError, match=words) as err:
            safe_torch_load(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)


class Payload:
    """Any class: unpickling it would run its module's code, so weights_only=True refuses it."""

    def __init__(self):
        self.x = 1


def test_safe_load_refuses_a_pickled_object_that_is_not_tensors(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": Payload()}, path)
    assert isinstance(torch.load(path, weights_only=False)["obj"], Payload)  # a real pickle of it
    with pytest.raises(DataError, match="evil.pt is truncated or corrupt"):
        safe_torch_load(path)


def test_safe_load_names_what_it_loads(tmp_path):
    with pytest.raises(DataError, match="^segmentation model .*nope.pt does not exist$"):
        safe_torch_load(tmp_path / "nope.pt", what="segmentation model")


def test_json_is_valid_json_even_with_nan_inf_and_numpy(tmp_path):
    import json
    import math

    import numpy as np

    from effdl_ros.atomic_io import atomic_write_json

    out = atomic_write_json(tmp_path / "r.json", {"a": math.nan, "b": [math.inf, -math.inf],
                                                  "c": np.float32(1.5), "d": np.int64(3), 4: tmp_path})
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": ["inf", "-inf"], "c": 1.5, "d": 3, "4": str(tmp_path)}


def test_json_refuses_a_missing_folder_when_asked(tmp_path):
    import pytest

    from effdl_ros.atomic_io import atomic_write_json
    from effdl_ros.errors import DataError

    with pytest.raises(DataError, match="does not exist"):
        atomic_write_json(tmp_path / "no" / "r.json", {}, require_folder=True)


def test_next_write_removes_a_killed_writers_old_temp_file_only(tmp_path):
    target = tmp_path / "model.pt"
    old = tmp_path / ".model.pt.abc123.tmp"      # what a SIGKILL mid-save leaves behind
    young = tmp_path / ".model.pt.def456.tmp"    # maybe another process writing right now
    other = tmp_path / ".other.pt.ghi789.tmp"    # another file's leftover: not ours
    for leftover in (old, young, other):
        leftover.write_bytes(b"partial")
    stale = time.time() - 2 * atomic_io.STALE_TEMP_AGE_S
    os.utime(old, (stale, stale))
    os.utime(other, (stale, stale))
    atomic_io.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert not old.exists() and young.exists() and other.exists()
