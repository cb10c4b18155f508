"""Replay/demo report: metrics from per-frame records, Markdown, plots, and reading records back."""
import json

import numpy as np
import pytest

from effdl_ros.bench import report
from effdl_ros.errors import DataError
from effdl_ros.tracking import metrics as tm


def records(n=20, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gt = [50.0 + 2 * i, 40.0, 30.0, 20.0]
        box = [gt[0] + rng.normal(0, 4), gt[1] + rng.normal(0, 4), 30.0, 20.0]
        conf = np.zeros((3, 3), int)
        conf[0, 0], conf[1, 1], conf[2, 2], conf[0, 1] = 90, 50, 10, 10
        out.append({"index": i, "t_s": 0.1 * i, "latency_ms": {"tracker": 10.0 + i, "ddi": 4.0},
                    "energy_j": {"tracker": 0.2, "ddi": 0.05},
                    "energy_source": {"tracker": "modelled", "ddi": "modelled"},
                    "power_w": {"tracker": 2.0}, "budget_w": {"total": 10.0 if i < n // 2 else 5.0},
                    "box": box if i != 3 else None, "gt_box": gt, "seg_confusion": conf,
                    "seg_classes": ["Sky", "Road", "Car"]})
    return out


def test_metrics_from_records():
    recs = records()
    m = report.compute_metrics(recs, meta={"input": "x"})
    assert m["frames"] == 20 and m["duration_s"] == pytest.approx(1.9)
    assert m["rate_hz"] == pytest.approx(19 / 1.9)
    lat = m["latency_ms"]["tracker"]
    assert lat["count"] == 20 and lat["mean"] == pytest.approx(19.5) and lat["max"] == 29.0
    assert m["energy"]["tracker"]["total_j"] == pytest.approx(4.0)
    assert m["energy"]["tracker"]["source"] == "modelled"
    assert m["energy_total_j"] == pytest.approx(5.0)
    assert (m["budget_w"]["total"]["min"], m["budget_w"]["total"]["max"]) == (5.0, 10.0)
    # tracking: the same numbers as the OTB metrics on the same arrays (a missing box is a failure)
    pred = np.array([r["box"] if r["box"] is not None else [np.nan] * 4 for r in recs])
    gt = np.array([r["gt_box"] for r in recs])
    assert m["tracking"]["success_auc"] == pytest.approx(tm.success_auc(pred, gt))
    assert m["tracking"]["precision_20px"] == pytest.approx(tm.precision(pred, gt))
    assert m["tracking"]["success_curve"][0] == pytest.approx(19 / 20)
    # segmentation: IoU from the summed confusion: Sky 90/(100+0) ... Road 50/(50+10)
    seg = m["segmentation"]
    assert seg["per_class_iou"]["Sky"] == pytest.approx(90 / 100)
    assert seg["per_class_iou"]["Road"] == pytest.approx(50 / 60)
    assert seg["per_class_iou"]["Car"] == pytest.approx(1.0)
    assert seg["miou"] == pytest.approx((0.9 + 50 / 60 + 1.0) / 3)
    assert seg["pixel_accuracy"] == pytest.approx(150 / 160)


def test_no_tracker_no_tracking_metrics():
    recs = [{"index": i, "gt_box": [1, 1, 5, 5]} for i in range(3)]
    assert "tracking" not in report.compute_metrics(recs)


def test_empty_run_is_an_error():
    with pytest.raises(DataError, match="no frame records"):
        report.compute_metrics([])


def test_write_report_files(tmp_path):
    recs = records()
    out = tmp_path / "rep"
    m = report.write_report(recs, out, title="t", events=[{"t_s": 1.0, "text": "budget halved"}])
    assert set(m["plots"]) == set(report.PLOTS)
    for name in report.PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["frames"] == 20 and saved["events"][0]["text"] == "budget halved"
    text = (out / "summary.md").read_text()
    assert "| tracker | 20 |" in text and "success AUC" in text and "mIoU" in text
    back = report.records_from_jsonl(out / "frames.jsonl")
    assert len(back) == 20 and back[3]["box"] is None
    again = report.compute_metrics(back)["tracking"]
    assert again["success_auc"] == pytest.approx(m["tracking"]["success_auc"])
    assert again["precision_20px"] == pytest.approx(m["tracking"]["precision_20px"])


def test_malformed_records_line(tmp_path):
    path = tmp_path / "frames.jsonl"
    path.write_text('{"index": 0}\n{"index": 1\n')
    with pytest.raises(DataError, match=r"frames.jsonl, line 2"):
        report.records_from_jsonl(path)
    path.write_text('{"index": 0}\n{"t_s": 1}\n')
    with pytest.raises(DataError, match=r"line 2: a frame record needs an 'index'"):
        report.records_from_jsonl(path)
