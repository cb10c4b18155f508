"""Message classes, by their short names: `from effdl_ros.runtime.messages import Image`.

Under real ROS 2 these are the generated rclpy classes (sensor_msgs.msg.Image, ...); on the dds and
inproc backends they are classes built from the same .msg definitions (local/typesupport.py). Either
way a message is built with keyword arguments and defaults, as in rclpy.
"""
from __future__ import annotations

import importlib
from typing import Any

from effdl_ros.runtime.backend import uses_rclpy

#: short name -> ROS type name, for every message type the package uses.
TYPES = {
    "Time": "builtin_interfaces/msg/Time",
    "Duration": "builtin_interfaces/msg/Duration",
    "Header": "std_msgs/msg/Header",
    "String": "std_msgs/msg/String",
    "Image": "sensor_msgs/msg/Image",
    "CompressedImage": "sensor_msgs/msg/CompressedImage",
    "Point2D": "vision_msgs/msg/Point2D",
    "Pose2D": "vision_msgs/msg/Pose2D",
    "BoundingBox2D": "vision_msgs/msg/BoundingBox2D",
    "ObjectHypothesis": "vision_msgs/msg/ObjectHypothesis",
    "ObjectHypothesisWithPose": "vision_msgs/msg/ObjectHypothesisWithPose",
    "Detection2D": "vision_msgs/msg/Detection2D",
    "Detection2DArray": "vision_msgs/msg/Detection2DArray",
    "Classification": "vision_msgs/msg/Classification",
    "LabelInfo": "vision_msgs/msg/LabelInfo",
    "VisionClass": "vision_msgs/msg/VisionClass",
    "DiagnosticArray": "diagnostic_msgs/msg/DiagnosticArray",
    "DiagnosticStatus": "diagnostic_msgs/msg/DiagnosticStatus",
    "KeyValue": "diagnostic_msgs/msg/KeyValue",
    "ResourceBudget": "effdl_ros/msg/ResourceBudget",
    "ResourceBudgetArray": "effdl_ros/msg/ResourceBudgetArray",
    "EnergyReport": "effdl_ros/msg/EnergyReport",
    "ModelUpdate": "effdl_ros/msg/ModelUpdate",
}


def get_message_class(typename: str) -> type:
    """'sensor_msgs/msg/Image' -> the class this backend uses."""
    if uses_rclpy():
        package, _, name = typename.split("/")
        return getattr(importlib.import_module(f"{package}.msg"), name)
    from effdl_ros.runtime.local.typesupport import get_class

    return get_class(typename)


def type_name(message_or_class: Any) -> str:
    """The ROS type name ('sensor_msgs/msg/Image') of a message or message class."""
    cls = message_or_class if isinstance(message_or_class, type) else type(message_or_class)
    name = getattr(cls, "__msgtype__", None)
    if name:
        return name
    package = cls.__module__.split(".")[0]  # rclpy: sensor_msgs.msg._image.Image
    return f"{package}/msg/{cls.__name__}"


def __getattr__(name: str) -> Any:
    if name in TYPES:
        cls = get_message_class(TYPES[name])
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no message {name!r}")
