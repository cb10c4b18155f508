"""`effdl-ros track --box x,y,w,h`: tell a running tracker what to follow, without ROS 2.

Publishes one vision_msgs/Detection2D on `tracker/init` (reliable, keep last 10; offered
transient-local so a tracker that starts within --wait seconds still gets it) once a tracker
subscribes, and returns when it was delivered. The ROS 2 equivalent is
`ros2 topic pub --once /tracker/init vision_msgs/msg/Detection2D "{bbox: {center: {position: {x: CX, y: CY}}, size_x: W, size_y: H}}"`.
"""
from __future__ import annotations

import argparse
import time

from effdl_ros.errors import ConfigError


def parse_box(text: str):
    """'x,y,w,h' in pixels -> four floats with a positive size; a ConfigError otherwise."""
    try:
        box = [float(v) for v in str(text).split(",")]
    except ValueError:
        box = []
    if len(box) != 4 or not (box[2] > 0 and box[3] > 0) or any(v != v for v in box):
        raise ConfigError(f"--box must be x,y,w,h in pixels with a positive width and height, got {text!r}")
    return box


from effdl_ros.graph.session import init_message  # noqa: E402,F401 - built there, used here and by the replay


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--box", required=True, help="x,y,w,h in pixels of the object to follow")
    p.add_argument("--topic", default="tracker/init", help="the tracker's init topic (default tracker/init)")
    p.add_argument("--backend", choices=("dds", "rclpy"), default="dds",
                   help="middleware of the running graph (default dds, as `effdl-ros run`)")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a tracker (default 30)")


def _run(args: argparse.Namespace) -> int:
    box = parse_box(args.box)
    from effdl_ros.runtime import backend

    backend.select(args.backend)
    from effdl_ros.runtime import Node, init, shutdown, spin_once
    from effdl_ros.runtime.messages import Detection2D
    from effdl_ros.runtime.qos import latched

    init(args=["effdl-ros-track"])
    node = Node("track_cli")
    try:
        pub = node.create_publisher(Detection2D, args.topic, latched(10))
        deadline = time.monotonic() + args.wait
        while pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                raise ConfigError(f"no tracker subscribes to {node.resolve_topic_name(args.topic)} after "
                                  f"{args.wait:g} s; is the graph running on this ROS_DOMAIN_ID?")
            spin_once(node, timeout_sec=0.1)
        msg = init_message(box)
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        end = time.monotonic() + 1.0  # reliable delivery: keep the writer alive a moment
        while time.monotonic() < end:
            spin_once(node, timeout_sec=0.1)
        print(f"sent box {','.join(f'{v:g}' for v in box)} to {node.resolve_topic_name(args.topic)}")
    finally:
        node.destroy_node()
        shutdown()
    return 0


def register(cli) -> None:
    cli.add(None, "track", help="send a running tracker the box to follow (tracker/init), without ROS 2",
            configure=_configure, run=_run)
