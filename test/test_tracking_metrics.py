"""OTB metrics against hand-computed values, and ground-truth parsing (OTB, VOT polygons, UAV123)."""
import numpy as np
import pytest

from effdl_ros.data.sequences import load_sequence, parse_box_line, read_boxes
from effdl_ros.errors import DataError
from effdl_ros.tracking import metrics


def test_iou_hand_computed():
    # 10x10 boxes offset by 5 in x: intersection 50, union 150
    assert metrics.iou([0, 0, 10, 10], [5, 0, 10, 10])[0] == pytest.approx(1 / 3)
    assert metrics.iou([0, 0, 10, 10], [0, 0, 10, 10])[0] == pytest.approx(1.0)
    assert metrics.iou([0, 0, 10, 10], [20, 20, 5, 5])[0] == 0.0
    # 4x4 inside 8x8: 16 / 64
    assert metrics.iou([0, 0, 8, 8], [2, 2, 4, 4])[0] == pytest.approx(0.25)


def test_success_auc_and_precision_hand_computed():
    gt = np.array([[0, 0, 10, 10]] * 4, dtype=float)
    pred = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [30, 30, 10, 10], [np.nan] * 4])
    # IoUs 1, 1/3, 0, 0 (missing = 0); success at t = 0, .05, ..., 1 with IoU > t
    curve = metrics.success_curve(pred, gt)
    expected = [np.mean([v > t for v in (1.0, 1 / 3, 0.0, 0.0)]) for t in np.linspace(0, 1, 21)]
    assert np.allclose(curve, expected)
    assert metrics.success_auc(pred, gt) == pytest.approx(np.mean(expected))
    # by hand: thresholds 0..0.3 (7 of them) -> 0.5, 0.35..0.95 (13) -> 0.25, 1.0 -> 0
    assert metrics.success_auc(pred, gt) == pytest.approx((7 * 0.5 + 13 * 0.25) / 21)
    # centre errors 0, 5, 42.4, inf -> 2 of 4 within 20 px
    assert metrics.precision(pred, gt) == pytest.approx(0.5)


def test_absent_ground_truth_frames_are_skipped():
    gt = np.array([[0, 0, 10, 10], [np.nan] * 4])
    pred = np.array([[0, 0, 10, 10], [50, 50, 1, 1]])
    assert metrics.success_auc(pred, gt) == pytest.approx(20 / 21)


def test_parse_separators_and_polygon():
    p = "gt.txt"
    assert parse_box_line("1,2,3,4", p, 1).tolist() == [1, 2, 3, 4]
    assert parse_box_line("1 2 3 4", p, 1).tolist() == [1, 2, 3, 4]
    assert parse_box_line("1\t2\t3\t4", p, 1).tolist() == [1, 2, 3, 4]
    assert parse_box_line("1, 2,\t3 4", p, 1).tolist() == [1, 2, 3, 4]
    # rotated square (diamond) -> axis-aligned min/max box
    assert parse_box_line("5,0,10,5,5,10,0,5", p, 1).tolist() == [0, 0, 10, 10]
    assert np.isnan(parse_box_line("NaN,NaN,NaN,NaN", p, 1)).all()


@pytest.mark.parametrize("line", ["1,2,3", "a,b,c,d", "1,2,-3,4", "1,2,3,4,5,6"])
def test_malformed_line_names_file_and_line(tmp_path, line):
    f = tmp_path / "groundtruth.txt"
    f.write_text("1,2,3,4\n" + line + "\n")
    with pytest.raises(DataError, match=r"groundtruth\.txt, line 2"):
        read_boxes(f)


def _frames(folder, n):
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i + 1:04d}.jpg"), np.full((20, 30, 3), i * 10, np.uint8))


def test_layouts_otb_vot_uav(tmp_path):
    _frames(tmp_path / "otb" / "img", 3)
    (tmp_path / "otb" / "groundtruth_rect.txt").write_text("1\t2\t3\t4\n2\t3\t4\t5\n3\t4\t5\t6\n4\t5\t6\t7\n")
    s = load_sequence(tmp_path / "otb")
    assert s.name == "otb" and len(s) == 3 and s.boxes.shape == (3, 4)   # extra boxes beyond frames dropped
    _frames(tmp_path / "vot", 2)
    (tmp_path / "vot" / "groundtruth.txt").write_text("0,0,4,0,4,2,0,2\n1,1,5,1,5,3,1,3\n")
    assert load_sequence(tmp_path / "vot").boxes.tolist() == [[0, 0, 4, 2], [1, 1, 4, 2]]
    _frames(tmp_path / "seq" / "boat", 2)
    (tmp_path / "seq" / "boat.txt").write_text("1,1,5,5\nNaN,NaN,NaN,NaN\n")
    assert len(load_sequence(tmp_path / "seq" / "boat")) == 2
    with pytest.raises(DataError, match="not a tracking sequence"):
        load_sequence(tmp_path / "seq")
