"""mIoU, per-class IoU and pixel accuracy against a hand-computed confusion matrix."""
import numpy as np
import pytest

from effdl_ros.segmentation.metrics import confusion_matrix, scores


def test_confusion_matrix_and_scores_by_hand():
    # 3 classes, ignore index 3.
    gt = np.array([[0, 0, 1, 1], [2, 2, 3, 3]])
    pr = np.array([[0, 1, 1, 1], [2, 0, 0, 2]])
    conf = confusion_matrix(pr, gt, 3, ignore_index=3)
    # rows = truth: class 0 -> (0:1, 1:1); class 1 -> (1:2); class 2 -> (2:1, 0:1); the two 3s ignored
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    s = scores(conf, ["a", "b", "c"])
    # IoU a = 1 / (2 + 2 - 1) = 1/3; b = 2 / (3 + 2 - 2) = 2/3; c = 1 / (1 + 2 - 1) = 1/2
    assert s["per_class"]["a"] == pytest.approx(1 / 3)
    assert s["per_class"]["b"] == pytest.approx(2 / 3)
    assert s["per_class"]["c"] == pytest.approx(1 / 2)
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert s["pixel_acc"] == pytest.approx(4 / 6)


def test_absent_class_is_none_and_left_out_of_the_mean():
    gt = np.array([0, 0, 1, 1])
    conf = confusion_matrix(gt, gt, 3, ignore_index=None)
    s = scores(conf)
    assert s["per_class"]["2"] is None
    assert s["miou"] == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        confusion_matrix(np.zeros(3), np.zeros(4), 2)
