"""ros2 launch effdl_ros pipeline.launch.py [config:=/path/to/pipeline.yaml] [image:=/camera/image_raw] [rviz:=true]
                                           [namespace:=robot1]

Reads the same config/pipeline.yaml that `effdl-ros run` uses, checks the whole file first (the
same one-sentence errors as `effdl-ros run`), and starts one launch_ros Node per entry, with its
parameters, remappings, namespace and respawn setting. `image:=TOPIC` remaps every node's `image`
(a robot's camera; use config/camera.yaml, which has no source node). The nodes run on the rclpy
backend (EFFDL_ROS_BACKEND=rclpy). `namespace:=robot1` goes in front of every node's namespace (an
entry's own namespace without a leading slash is relative to it, one with a slash is kept), as
`effdl-ros run --namespace /robot1` does: two robots' graphs on one domain keep apart.
rviz:=true also starts the `annotator` node (the tracks and the
classification drawn into /image/annotated) and rviz2 with rviz/effdl_ros.rviz (that image, the camera
image and the segmentation overlay); rviz2 itself is not a dependency of the package.
"""
import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _nodes(context):
    path = LaunchConfiguration("config").perform(context)
    image = LaunchConfiguration("image").perform(context)
    extra = [("image", image)] if image else []
    pushed = LaunchConfiguration("namespace").perform(context).strip("/")
    try:
        from effdl_ros.graph.validate import validate_pipeline
        from effdl_ros.graph.launch import load_pipeline

        validate_pipeline(load_pipeline(path), extra_remaps=extra)
    except ImportError:
        pass  # effdl_ros not importable by launch's Python: the nodes report errors themselves
    with open(path, "r", encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    parameters = document.get("parameters") or {}
    actions = []
    for entry in document["nodes"]:
        name = entry.get("name", entry["executable"])
        own = str(entry.get("namespace", "") or "")
        namespace = "/" + own.strip("/")
        fqn = namespace.rstrip("/") + "/" + name  # the file names parameters without the pushed namespace
        section = parameters.get(fqn) or parameters.get(name) or {}
        if pushed and not own.startswith("/"):
            namespace = "/" + "/".join(p for p in (pushed, own.strip("/")) if p)
        actions.append(Node(
            package="effdl_ros", executable=entry["executable"], name=name, namespace=namespace,
            parameters=[section.get("ros__parameters", {})],
            remappings=extra + list((entry.get("remappings") or {}).items()),
            respawn=bool(entry.get("respawn", False)),
            respawn_delay=float(entry.get("respawn_delay", 1.0)),
            additional_env={"EFFDL_ROS_BACKEND": "rclpy"},
            output="screen"))
    return actions


def generate_launch_description():
    share = get_package_share_directory("effdl_ros")
    default = os.path.join(share, "config", "pipeline.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=default,
                              description="pipeline YAML: nodes, parameters, remappings"),
        DeclareLaunchArgument("image", default_value="",
                              description="remap every node's image topic, e.g. /camera/image_raw"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="push a namespace onto every node, e.g. robot1"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="true: also start rviz2 with rviz/effdl_ros.rviz"),
        OpaqueFunction(function=_nodes),
        Node(package="effdl_ros", executable="annotator", name="annotator", output="screen",
             additional_env={"EFFDL_ROS_BACKEND": "rclpy"}, condition=IfCondition(LaunchConfiguration("rviz"))),
        Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
             arguments=["-d", os.path.join(share, "rviz", "effdl_ros.rviz")],
             condition=IfCondition(LaunchConfiguration("rviz"))),
    ])
