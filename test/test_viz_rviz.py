"""RViz: rviz/effdl_ros.rviz, the rviz:=true launch argument and the `annotator` node it starts."""
import ast
from pathlib import Path

import numpy as np
import yaml

from effdl_ros.nodes.annotator import BOX_RGB, AnnotatorNode, draw
from effdl_ros.runtime import Node
from effdl_ros.runtime.images import cv2_to_imgmsg, imgmsg_to_cv2
from effdl_ros.runtime.messages import (
    Classification,
    Detection2D,
    Detection2DArray,
    Header,
    Image,
    ObjectHypothesis,
    ObjectHypothesisWithPose,
)
from effdl_ros.runtime.qos import qos_profile_sensor_data
from effdl_ros.runtime.testing import InprocGraph

ROOT = Path(__file__).resolve().parents[1]


def test_rviz_config_and_launch_argument():
    """The config shows the annotated image, the camera and the overlay (best effort, as published);
    pipeline.launch.py starts rviz2 and the annotator with rviz:=true (checked on the source)."""
    rviz = yaml.safe_load((ROOT / "rviz" / "effdl_ros.rviz").read_text())
    images = [d for d in rviz["Visualization Manager"]["Displays"] if d["Class"] == "rviz_default_plugins/Image"]
    assert {d["Topic"]["Value"] for d in images} == {"/image/annotated", "/image", "/segmentation/overlay"}
    assert all(d["Topic"]["Reliability Policy"] == "Best Effort" for d in images)
    text = (ROOT / "launch" / "pipeline.launch.py").read_text()
    calls = [n for n in ast.walk(ast.parse(text))
             if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DeclareLaunchArgument"]
    rviz_arg = [c for c in calls if isinstance(c.args[0], ast.Constant) and c.args[0].value == "rviz"]
    assert rviz_arg and any(k.arg == "default_value" and k.value.value == "false" for k in rviz_arg[0].keywords)
    assert text.count('condition=IfCondition(LaunchConfiguration("rviz"))') == 2
    assert 'executable="annotator"' in text and '"effdl_ros.rviz"' in text


def _detection(cx, cy, w, h):
    det = Detection2D(id="7")
    det.bbox.center.position.x, det.bbox.center.position.y, det.bbox.size_x, det.bbox.size_y = cx, cy, w, h
    det.results = [ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id="target", score=0.8))]
    return det


def test_draw_boxes_and_survives_odd_boxes():
    rgb = np.zeros((60, 80, 3), np.uint8)
    tracks = Detection2DArray(detections=[_detection(40, 30, 20, 10), _detection(float("nan"), 1, 2, 3),
                                          _detection(1e9, -1e9, 1e12, 5)])
    out = draw(rgb, tracks, Classification(results=[ObjectHypothesis(class_id="road", score=0.9)]))
    assert out.shape == rgb.shape and not rgb.any()  # the input is not modified
    assert tuple(out[25, 40]) == BOX_RGB and tuple(out[35, 40]) == BOX_RGB  # top and bottom edges
    assert tuple(out[30, 40]) == (0, 0, 0)  # inside the box
    assert out[:14, :].any()  # the classification text


def test_annotator_node_publishes_the_drawn_image():
    with InprocGraph() as graph:
        graph.add(AnnotatorNode)
        feeder = graph.add(lambda **kw: Node("camera", **kw))
        images = feeder.create_publisher(Image, "image", qos_profile_sensor_data)
        tracks = feeder.create_publisher(Detection2DArray, "tracks", 10)
        got = []
        feeder.create_subscription(Image, "image/annotated", got.append, qos_profile_sensor_data)
        header = Header(frame_id="camera")
        header.stamp.sec = 100
        tracks.publish(Detection2DArray(header=header, detections=[_detection(40, 30, 20, 10)]))
        graph.spin_until_idle()
        images.publish(cv2_to_imgmsg(np.zeros((60, 80, 3), np.uint8), "rgb8", header=header))
        graph.spin_until_idle()
        assert len(got) == 1 and got[0].header.stamp.sec == 100
        assert tuple(imgmsg_to_cv2(got[0], "rgb8")[25, 40]) == BOX_RGB
        # tracks older than max_age_s (1 s) are not drawn
        later = Header(frame_id="camera")
        later.stamp.sec = 200
        images.publish(cv2_to_imgmsg(np.zeros((60, 80, 3), np.uint8), "rgb8", header=later))
        graph.spin_until_idle()
        assert len(got) == 2 and not imgmsg_to_cv2(got[1], "rgb8").any()
