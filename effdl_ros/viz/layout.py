"""The Foxglove layout for the live view and for recorded bags: foxglove/effdl_ros_layout.json.

In Foxglove (or Lichtblick): Layouts > Import from file. Panels: the camera image with the tracks and
the classification drawn on it (/annotations), the segmentation overlay, a plot of each node's power
against its budget (/energy/power), and the energy monitor's diagnostics. The file is the app's
layout format (configById + a mosaic tree); regenerate it after changing the channels:
`python -m effdl_ros.viz.layout foxglove/effdl_ros_layout.json` (a test compares the two).
"""
from __future__ import annotations

import json
import sys
from typing import Any, Dict, Sequence

ANNOTATIONS_TOPIC = "/annotations"   # effdl_ros.viz.foxglove_bridge.ANNOTATIONS_TOPIC (kept equal by a test)
POWER_TOPIC = "/energy/power"        # effdl_ros.viz.foxglove_bridge.POWER_TOPIC

#: the default pipeline's model nodes (config/pipeline.yaml), one colour each
NODES = (("tracker", "#2ca02c"), ("segmentation", "#1f77b4"), ("ddi", "#ff7f0e"))


def _series(path: str, label: str, color: str, dashed: bool = False) -> Dict[str, Any]:
    series = {"value": path, "enabled": True, "timestampMethod": "receiveTime", "label": label, "color": color}
    if dashed:
        series["lineStyle"] = "dashed"
    return series


def build(nodes: Sequence = NODES) -> Dict[str, Any]:
    paths = []
    for name, color in nodes:
        paths.append(_series(f"{POWER_TOPIC}.{name}.power_w", f"{name} power (W)", color))
        paths.append(_series(f"{POWER_TOPIC}.{name}.budget_w", f"{name} budget (W)", color, dashed=True))
    paths.append(_series(f"{POWER_TOPIC}.total.power_w", "total power (W)", "#7f7f7f"))
    paths.append(_series(f"{POWER_TOPIC}.total.budget_w", "total budget (W)", "#7f7f7f", dashed=True))
    config = {
        "Image!camera": {
            "title": "camera, tracks and classification",
            "imageMode": {"imageTopic": "/image", "annotations": {ANNOTATIONS_TOPIC: {"visible": True}}},
        },
        "Image!overlay": {
            "title": "segmentation overlay",
            "imageMode": {"imageTopic": "/segmentation/overlay"},
        },
        "Plot!power": {
            "title": "power vs budget per node (W)",
            "paths": paths,
            "showLegend": True,
            "legendDisplay": "top",
            "showXAxisLabels": True,
            "showYAxisLabels": True,
            "isSynced": True,
            "xAxisVal": "timestamp",
        },
        "DiagnosticSummary!energy": {
            "title": "energy monitor diagnostics",
            "topicToRender": "/diagnostics",
            "minLevel": 0,
            "pinnedIds": [],
            "hardwareIdFilter": "",
            "sortByLevel": True,
        },
    }
    mosaic = {
        "direction": "column",
        "splitPercentage": 60,
        "first": {"direction": "row", "first": "Image!camera", "second": "Image!overlay"},
        "second": {"direction": "row", "splitPercentage": 60, "first": "Plot!power",
                   "second": "DiagnosticSummary!energy"},
    }
    return {"configById": config, "globalVariables": {}, "userNodes": {}, "linkedGlobalVariables": [],
            "playbackConfig": {"speed": 1}, "layout": mosaic}


def topics(layout: Dict[str, Any]) -> set:
    """Every topic the layout's panels read (for the test that they are all served)."""
    found = set()
    for panel in layout["configById"].values():
        mode = panel.get("imageMode", {})
        found.update(t for t in [mode.get("imageTopic")] + list(mode.get("annotations", {})) if t)
        found.update("/" + p["value"].split(".")[0].strip("/") for p in panel.get("paths", []))
        if panel.get("topicToRender"):
            found.add(panel["topicToRender"])
    return found


def to_text(layout: Dict[str, Any] = None) -> str:
    """The layout as the committed file holds it (indented JSON, newline at the end)."""
    return json.dumps(layout or build(), indent=2) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = to_text()
    if argv:
        with open(argv[0], "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
