"""`effdl-ros eval tracking`: the JSON shape of the issue, the plot, and a one-sentence error for a
malformed ground-truth file."""
import json

import numpy as np

from effdl_ros.cli.main import main


def _otb(tmp_path, n=6, bad_line=None):
    import cv2

    seq = tmp_path / "square"
    (seq / "img").mkdir(parents=True)
    lines = []
    for i in range(n):
        img = np.full((96, 128, 3), 60, np.uint8)
        x, y = 30 + 2 * i, 25 + i
        img[y:y + 20, x:x + 24] = (40, 200, 240)
        cv2.imwrite(str(seq / "img" / f"{i + 1:04d}.jpg"), img)
        lines.append(f"{x},{y},24,20")
    if bad_line is not None:
        lines[bad_line] = "12,13,oops,4"
    (seq / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return seq


def test_eval_tracking_json_shape_and_plot(tmp_path, capsys):
    seq = _otb(tmp_path)
    out, plot = tmp_path / "r.json", tmp_path / "s.png"
    code = main(["eval", "tracking", str(seq), "--trackers", "csrt,roam-untrained", "--json", str(out),
                 "--plot", str(plot), "--search-size", "97", "--update-interval", "2", "--optimizer-steps", "1"])
    assert code == 0
    res = json.loads(out.read_text())
    assert set(res["trackers"]) == {"csrt", "roam-untrained"}
    for tr in res["trackers"].values():
        s = tr["sequences"]["square"]
        assert {"auc", "precision20", "fps", "frames"} <= set(s)
        assert s["frames"] == 6 and 0 <= s["auc"] <= 1 and s["fps"] > 0
        assert {"mean_auc", "mean_precision20", "mean_fps"} <= set(tr)
    assert res["trackers"]["csrt"]["sequences"]["square"]["auc"] > 0.5   # CSRT follows an easy square
    assert plot.is_file() and plot.stat().st_size > 1000
    assert "tracking (OTB one-pass)" in capsys.readouterr().out


def test_eval_tracking_bad_ground_truth_is_one_sentence(tmp_path, capsys):
    seq = _otb(tmp_path, bad_line=3)
    assert main(["eval", "tracking", str(seq), "--trackers", "csrt"]) == 2
    err = capsys.readouterr().err
    assert "groundtruth_rect.txt, line 4" in err and "Traceback" not in err


def test_eval_tracking_unknown_tracker(tmp_path, capsys):
    seq = _otb(tmp_path)
    assert main(["eval", "tracking", str(seq), "--trackers", "nope"]) == 2
    assert "unknown tracker 'nope'" in capsys.readouterr().err


def test_train_roam_writes_a_loadable_checkpoint(tmp_path):
    import cv2

    from effdl_ros.tracking.tracker import load_model

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(imgs / f"{i}.jpg"), rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    out = tmp_path / "roam_tiny.pt"
    code = main(["train", "roam", "--out", str(out), "--iterations", "1", "--batch", "1", "--images", str(imgs),
                 "--digits", str(tmp_path / "absent.png"), "--device", "cpu", "--threads", "1"])
    assert code == 0 and out.is_file()
    m = load_model(out)
    assert m.info["iterations"] == 1 and m.net.config.search_size == 161
