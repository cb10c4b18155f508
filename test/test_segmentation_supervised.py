"""The supervised segmenter (issue 17, deliverable 1): its sequence split, augmentation and resumable training."""
import math

import cv2
import numpy as np
import pytest
import torch

from effdl_ros.data.camvid import IGNORE_INDEX, sequence_of
from effdl_ros.errors import ConfigError
from effdl_ros.segmentation.supervised import (
    SupervisedPlan,
    sequences,
    split_by_sequence,
    strong_augment,
    train_supervised,
)


def _camvid_like(root, names_by_split):
    """A folder laid out as CamVid (train/, trainannot/, val/, valannot/) with tiny frames."""
    for split, names in names_by_split.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for name in names:
            cv2.imwrite(str(root / split / f"{name}.png"), np.zeros((8, 8, 3), np.uint8))
            cv2.imwrite(str(root / f"{split}annot" / f"{name}.png"), np.zeros((8, 8), np.uint8))
    return root


def test_split_keeps_every_frame_of_the_held_out_sequence_out_of_training(tmp_path):
    root = _camvid_like(tmp_path, {"train": ["0001TP_006690", "0006R0_f00930", "0016E5_00390"],
                                   "val": ["0016E5_07959", "0006R0_f01020"]})
    train, held = split_by_sequence(root, "0006R0")
    assert {sequence_of(p[0]) for p in held} == {"0006R0"} and len(held) == 2  # from both splits
    assert "0006R0" not in {sequence_of(p[0]) for p in train} and len(train) == 3
    assert sequences(train) == {"0001TP": 1, "0016E5": 2}
    everything, none = split_by_sequence(root, "none")
    assert len(everything) == 5 and none == []
    with pytest.raises(ConfigError, match="0001TP, 0006R0, 0016E5"):
        split_by_sequence(root, "Seq05VD")



def test_holding_out_dusk_scores_only_its_report_frames_and_the_oracle_adds_only_adaptation_labels(tmp_path):
    # 45 dusk frames, listed out of time order across both splits: the last 5 in time are the report part
    dusk = [f"0001TP_{n:06d}" for n in range(100, 100 + 45 * 30, 30)]
    root = _camvid_like(tmp_path, {"train": dusk[::2] + ["0006R0_f00930"], "val": dusk[1::2] + ["0016E5_00390"]})
    report_names = {f"{n}.png" for n in dusk[40:]}
    train, held = split_by_sequence(root, "0001TP")
    assert {p[0].name for p in held} == report_names
    assert sequences(train) == {"0006R0": 1, "0016E5": 1}  # no dusk frame at all without labels
    oracle_train, oracle_held = split_by_sequence(root, "0001TP", dusk_labels=True)
    assert oracle_held == held
    assert sequences(oracle_train) == {"0001TP": 40, "0006R0": 1, "0016E5": 1}
    assert not report_names & {p[0].name for p in oracle_train}
    with pytest.raises(ConfigError, match="--holdout 0001TP"):
        split_by_sequence(root, "0006R0", dusk_labels=True)

def test_strong_augment_keeps_labels_on_their_pixels_and_the_input_range():
    n, h, w = 6, 24, 32
    x = -torch.ones(n, 3, h, w)
    x[..., w // 2:] = 1.0                   # a bright right half ...
    y = torch.zeros(n, h, w, dtype=torch.long)
    y[..., w // 2:] = 1                     # ... labelled 1
    y[:, 0, 0] = IGNORE_INDEX
    for seed in range(8):
        xa, ya = strong_augment(x.clone(), y.clone(), torch.Generator().manual_seed(seed))
        assert xa.shape == x.shape and ya.shape == y.shape
        assert float(xa.min()) >= -1.0 and float(xa.max()) <= 1.0
        assert set(ya.unique().tolist()) <= {0, 1, IGNORE_INDEX}
        grey = xa.mean(1)
        for i in range(n):  # colour changes are monotonic and blur only softens the edge
            assert grey[i][ya[i] == 1].mean() > grey[i][ya[i] == 0].mean() + 0.2


def _tiny_data(n=4, h=32, w=48):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8)
    labels = rng.integers(0, 11, (n, h, w), dtype=np.uint8)
    return images, labels


def test_a_run_stopped_by_its_time_budget_resumes_to_the_same_weights(tmp_path):
    torch.set_num_threads(1)
    images, labels = _tiny_data()
    plan = SupervisedPlan(height=32, width=48, net_width=0.25, batch=2, iters=4, checkpoint_every=2)
    whole, info = train_supervised(images, labels, plan, seed=3, log=lambda m: None)
    assert info["finished"] and info["iterations"] == 4

    state = tmp_path / "m.state"
    _, stopped = train_supervised(images, labels, plan, seed=3, state_path=state, seconds=0.0, log=lambda m: None)
    assert not stopped["finished"] and state.is_file()
    said = []
    resumed, info = train_supervised(images, labels, plan, seed=3, state_path=state, seconds=math.inf, log=said.append)
    assert info["finished"] and any("resuming" in m for m in said)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float())


def test_a_state_of_another_run_is_refused_naming_the_file(tmp_path):
    torch.set_num_threads(1)
    images, labels = _tiny_data()
    plan = SupervisedPlan(height=32, width=48, net_width=0.25, batch=2, iters=2, checkpoint_every=1)
    state = tmp_path / "m.state"
    train_supervised(images, labels, plan, seed=0, state_path=state, log=lambda m: None)
    with pytest.raises(ConfigError, match="m.state"):
        train_supervised(images, labels, plan, seed=1, state_path=state, log=lambda m: None)


def test_cli_bad_size_is_one_sentence(capsys):
    from effdl_ros.cli.segmentation import _standalone

    assert _standalone(["train", "segmenter", "--size", "250x320"]) != 0
    err = capsys.readouterr().err.strip()
    assert "multiple of 16" in err and len(err.splitlines()) == 1


def test_eval_scores_several_models_side_by_side_on_one_sequence(tmp_path):
    import json

    from effdl_ros.cli.segmentation import _standalone
    from effdl_ros.segmentation.network import TinySegNet, config_for, save_checkpoint

    torch.set_num_threads(1)
    root = _camvid_like(tmp_path / "camvid", {"train": ["0001TP_006690", "0006R0_f00930"], "val": ["0006R0_f01020"]})
    for k in range(2):
        torch.manual_seed(k)
        save_checkpoint(tmp_path / f"m{k}.pt", TinySegNet(11, 0.25), config_for(11, 0.25, (32, 48)))
    out = tmp_path / "r.json"
    code = _standalone(["eval", "segmentation", "--sequence", "0006R0", "--camvid-root", str(root),
                        "--model", str(tmp_path / "m0.pt"), str(tmp_path / "m1.pt"), "--json", str(out)])
    assert code == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["frames"] for r in rows] == [2, 2] and rows[0]["model"].endswith("m0.pt")
    assert _standalone(["eval", "segmentation", "--sequence", "0006R0", "--images", str(root / "val"),
                        "--model", str(tmp_path / "m0.pt")]) == 2


def test_train_cli_end_to_end_and_the_card_quotes_the_held_out_run(tmp_path):
    import json

    from effdl_ros.cli.segmentation import _standalone
    from effdl_ros.segmentation.network import load_checkpoint

    torch.set_num_threads(1)
    root = _camvid_like(tmp_path / "camvid", {"train": ["0001TP_006690", "0016E5_00390", "0006R0_f00930"],
                                              "val": ["0006R0_f01020"]})
    common = ["train", "segmenter", "--camvid-root", str(root), "--size", "32x48", "--net-width", "0.25",
              "--batch", "2", "--iters", "2", "--threads", "1", "--scales", "1.0,0.5"]
    held = tmp_path / "held.json"
    assert _standalone(common + ["--holdout", "0006R0", "--out", str(tmp_path / "held.pt"), "--json", str(held)]) == 0
    report = json.loads(held.read_text())
    assert report["holdout_frames"] == 2 and [r["scale"] for r in report["rows"]] == [1.0, 0.5]
    assert report["trained_on"] == {"0001TP": 1, "0016E5": 1}
    assert "Held out: 0006R0." in (tmp_path / "held.md").read_text()  # a whole sequence, not "report frames"

    assert _standalone(common + ["--holdout", "none", "--out", str(tmp_path / "all.pt"),
                                 "--recipe-check", str(held)]) == 0
    card = (tmp_path / "all.md").read_text()
    assert "--holdout 0006R0" in card and "never saw" in card
    _, cfg = load_checkpoint(tmp_path / "all.pt")
    assert tuple(cfg["input_hw"]) == (32, 48)
    # a held-out run with another plan estimates nothing for this one
    assert _standalone(common[:-4] + ["--iters", "3", "--threads", "1", "--holdout", "none",
                                      "--out", str(tmp_path / "other.pt"), "--recipe-check", str(held)]) == 2
