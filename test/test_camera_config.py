"""A robot's own camera: config/camera.yaml (no source node) with `image` remapped to the camera's
topic on the command line, the tracker's init_box parameter, and `effdl-ros track --box` sending a
box to a running graph over DDS without ROS 2."""
import os
import subprocess
import sys

import numpy as np
import pytest

from effdl_ros.errors import ConfigError
from effdl_ros.graph.launch import create_nodes
from effdl_ros.graph.validate import checked_pipeline
from effdl_ros.resources import share_path


def test_camera_config_runs_on_a_remapped_best_effort_camera_topic():
    from effdl_ros.nodes.observer import ObserverNode
    from effdl_ros.runtime import Node, Parameter
    from effdl_ros.runtime.images import cv2_to_imgmsg
    from effdl_ros.runtime.messages import Image
    from effdl_ros.runtime.qos import qos_profile_sensor_data
    from effdl_ros.runtime.testing import InprocGraph

    pipeline = checked_pipeline(str(share_path("config", "camera.yaml")), ["image:=/camera/image_raw"])
    assert "source" not in [s.executable for s in pipeline.nodes]
    with InprocGraph() as g:
        create_nodes(pipeline, g, overrides={"tracker": {"init_box": [100.0, 80.0, 40.0, 60.0]}})
        camera = g.add(lambda **kw: Node("camera_driver", **kw))
        pub = camera.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        observer = g.add(ObserverNode, parameter_overrides=[
            Parameter("topics", value=["tracks", "ddi/classification", "segmentation/labels", "image"]),
            Parameter("keep_messages", value=True)])
        frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
        for _ in range(3):
            pub.publish(cv2_to_imgmsg(frame, "rgb8"))
            g.spin_until_idle()
        for topic in ("tracks", "ddi/classification", "segmentation/labels"):
            assert observer.stats[topic].count == 3, topic
        assert "image" not in observer.stats or observer.stats["image"].count == 0  # nothing on /image
        tracks = observer.messages["tracks"]
        assert tracks[0].detections and tracks[0].detections[0].bbox.size_x == pytest.approx(40.0)


def test_init_box_must_be_a_box():
    from effdl_ros.nodes.tracker import TrackerNode
    from effdl_ros.runtime import Parameter
    from effdl_ros.runtime.testing import InprocGraph

    with InprocGraph() as g, pytest.raises(ConfigError, match="init_box"):
        g.add(TrackerNode, parameter_overrides=[Parameter("init_box", value=[1.0, 2.0, 0.0, 5.0])])


def test_track_box_parsing():
    from effdl_ros.cli.track import init_message, parse_box

    assert parse_box("10,20,30,40") == [10.0, 20.0, 30.0, 40.0]
    for bad in ("10,20,30", "a,b,c,d", "1,2,0,4", "1,2,3,-4"):
        with pytest.raises(ConfigError, match="--box"):
            parse_box(bad)
    msg = init_message([10.0, 20.0, 30.0, 40.0])
    assert (msg.bbox.center.position.x, msg.bbox.center.position.y, msg.bbox.size_x) == (25.0, 40.0, 30.0)


def test_track_command_reaches_a_tracker_subscription_over_dds(monkeypatch):
    pytest.importorskip("cyclonedds")
    domain = str(20 + os.getpid() % 80)
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    from effdl_ros.runtime import Node
    from effdl_ros.runtime.messages import Detection2D
    from effdl_ros.runtime.testing import InprocGraph

    got = []
    with InprocGraph(backend="dds") as g:
        node = g.add(lambda **kw: Node("tracker", **kw))
        node.create_subscription(Detection2D, "tracker/init", got.append, 10)  # the tracker's QoS
        proc = subprocess.Popen([sys.executable, "-m", "effdl_ros.cli.main", "track", "--box", "10,20,30,40",
                                 "--wait", "30"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, ROS_DOMAIN_ID=domain))
        try:
            g.spin_until(lambda: got and proc.poll() is not None, timeout_sec=60)
        finally:
            out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert got and got[0].bbox.size_x == 30.0 and got[0].bbox.center.position.y == 40.0
    assert "sent box 10,20,30,40 to /tracker/init" in out
