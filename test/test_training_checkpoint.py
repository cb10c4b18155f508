"""Atomic checkpoints and safe loading; the update guard; the replay buffer and stamp pairing."""
import os

import numpy as np
import pytest
import torch

from effdl_ros.errors import DataError
from effdl_ros.training import checkpoint as ckpt
from effdl_ros.training.guard import UpdateGuard
from effdl_ros.training.replay_buffer import ReplayBuffer, StampPairer


def state(v):
    return {"w": torch.full((3,), float(v))}


def test_round_trip(tmp_path):
    p = ckpt.save_checkpoint(tmp_path / "m.pt", state(1), {"a": [1, 2]}, {"version": 3})
    got = ckpt.load_checkpoint(p, model_dir=tmp_path)
    assert torch.equal(got["state_dict"]["w"], state(1)["w"])
    assert got["config"] == {"a": [1, 2]} and got["meta"]["version"] == 3


def test_killed_save_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    ckpt.save_checkpoint(path, state(1), {}, {})
    real_save = torch.save

    def dying_save(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04 half a zip")  # some bytes reach the temp file, then the process "dies"
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(path, state(2), {}, {})
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(ckpt.load_checkpoint(path)["state_dict"]["w"], state(1)["w"])
    assert os.listdir(tmp_path) == ["m.pt"]  # no temp file left behind


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_truncated_corrupt_or_missing_files_are_one_data_error(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content is None:
        msg = "does not exist"
    else:
        good = tmp_path / "good.pt"
        ckpt.save_checkpoint(good, state(1), {}, {})
        data = good.read_bytes()
        path.write_bytes(content or data[: len(data) // 2])
        msg = "truncated or corrupt"
    with pytest.raises(DataError, match=msg) as err:
        ckpt.load_checkpoint(path)
    assert "bad.pt" in str(err.value)


def test_paths_outside_the_model_dir_are_refused(tmp_path):
    inside = tmp_path / "models"
    inside.mkdir()
    outside = ckpt.save_checkpoint(tmp_path / "evil.pt", state(1), {}, {})
    with pytest.raises(DataError, match="outside the model directory"):
        ckpt.load_checkpoint(inside / ".." / "evil.pt", model_dir=inside)
    with pytest.raises(DataError, match="outside"):
        ckpt.load_checkpoint(outside, model_dir=inside)


def test_guard_refuses_an_update_that_lowers_the_validation_metric():
    g = UpdateGuard(min_samples=10)
    assert not g.decide(0.80, 0.85, 50).accept
    assert g.version == 0 and g.refused == 1
    assert g.decide(0.85, 0.85, 50).accept  # equal: did not drop
    assert g.decide(0.90, 0.85, 50).accept and g.version == 2
    assert not g.decide(0.99, 0.5, 5).accept  # too few held-out samples
    assert not g.decide(float("nan"), 0.5, 50).accept
    assert UpdateGuard(tolerance=0.02, min_samples=1).decide(0.84, 0.85, 5).accept


def test_replay_buffer_is_bounded_and_holds_out_a_fixed_share():
    buf = ReplayBuffer(50, holdout_every=5)
    for i in range(500):
        buf.add(np.full((1, 4, 4), i, np.float32), i % 10)
    assert len(buf) == 50 and len(buf.holdout) == 10 and len(buf.train) == 40
    held = {int(s.image[0, 0, 0]) for s in buf.holdout}
    trained = {int(s.image[0, 0, 0]) for s in buf.train}
    assert not held & trained and all(i % 5 == 4 for i in held)  # every 5th arrival, newest kept
    assert min(trained) >= 440
    x, y = buf.batch(8)
    assert x.shape == (8, 1, 4, 4) and y.dtype == np.int64


def test_stamp_pairer_pairs_in_either_order_and_stays_bounded():
    p = StampPairer(max_pending=3)
    assert p.add_image((1, 0), "img1") is None
    assert p.add_label((1, 0), 7, 0.9) == ("img1", 7, 0.9)
    assert p.add_label((2, 5), 3) is None
    assert p.add_image((2, 5), "img2") == ("img2", 3, 1.0)
    for s in range(10):
        p.add_image((100 + s, 0), s)
    assert len(p.images) == 3
