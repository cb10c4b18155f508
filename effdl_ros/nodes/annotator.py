"""annotator: the camera image with the tracks and the classification drawn on it, for RViz.

RViz 2 has no display for 2D detections (vision_msgs/Detection2DArray), so this node draws them:
subscribes `image` (sensor_msgs/Image, sensor-data QoS), `tracks` (vision_msgs/Detection2DArray) and
`ddi/classification` (vision_msgs/Classification), and publishes `image/annotated` (rgb8, sensor-data
QoS, header of the image): the newest tracks' boxes with "id class score" and the newest top
classes in the top-left corner. Started by `ros2 launch effdl_ros pipeline.launch.py rviz:=true` and
shown by rviz/effdl_ros.rviz. (Foxglove draws the same from the bridge's /annotations instead.)

Parameters: max_age_s (1.0): tracks or classifications whose stamp is older than this, relative to
the image's, are not drawn (0 = draw the newest whatever its age).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from effdl_ros.nodekit.parameters import Param, declare
from effdl_ros.runtime import Node, run_node
from effdl_ros.runtime.images import cv2_to_imgmsg, imgmsg_to_cv2
from effdl_ros.runtime.messages import Classification, Detection2DArray, Image
from effdl_ros.runtime.qos import qos_profile_sensor_data
from effdl_ros.runtime.safety import guarded

BOX_RGB = (40, 255, 80)
TEXT_RGB = (255, 255, 255)

PARAMETERS = (
    Param("max_age_s", 1.0, "tracks or classes older than this (from the image's stamp) are not drawn",
          range=(0.0, 1e6)),
)


def _stamp_s(msg: Any) -> float:
    return float(msg.header.stamp.sec) + float(msg.header.stamp.nanosec) * 1e-9


def draw(rgb: np.ndarray, tracks: Any = None, classification: Any = None) -> np.ndarray:
    """A copy of an RGB uint8 image with the tracks' boxes and labels and the top classes drawn."""
    import cv2

    out = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    h, w = out.shape[:2]
    for i, det in enumerate(getattr(tracks, "detections", None) or []):
        cx, cy = float(det.bbox.center.position.x), float(det.bbox.center.position.y)
        bw, bh = float(det.bbox.size_x), float(det.bbox.size_y)
        if not all(np.isfinite([cx, cy, bw, bh])):
            continue
        x0, y0 = int(round(np.clip(cx - bw / 2, -1, w))), int(round(np.clip(cy - bh / 2, -1, h)))
        x1, y1 = int(round(np.clip(cx + bw / 2, -1, w))), int(round(np.clip(cy + bh / 2, -1, h)))
        cv2.rectangle(out, (x0, y0), (x1, y1), BOX_RGB, 1)
        label = str(det.id or i)
        if det.results:
            hyp = det.results[0].hypothesis
            label += f" {hyp.class_id} {float(hyp.score):.2f}"
        cv2.putText(out, label, (max(0, x0), max(10, y0 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, BOX_RGB, 1,
                    cv2.LINE_AA)
    results = list(getattr(classification, "results", None) or [])[:3]
    if results:
        text = ", ".join(f"{r.class_id} {float(r.score):.2f}" for r in results)
        cv2.putText(out, text, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, TEXT_RGB, 1, cv2.LINE_AA)
    return out


class AnnotatorNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("annotator", **kwargs)
        declare(self, PARAMETERS)
        self.tracks: Optional[Any] = None
        self.classification: Optional[Any] = None
        self._pub = self.create_publisher(Image, "image/annotated", qos_profile_sensor_data)
        self.create_subscription(Detection2DArray, "tracks", guarded(self, self.on_tracks), 10)
        self.create_subscription(Classification, "ddi/classification", guarded(self, self.on_classification), 10)
        self.create_subscription(Image, "image", guarded(self, self.on_image), qos_profile_sensor_data)

    def on_tracks(self, msg) -> None:
        self.tracks = msg

    def on_classification(self, msg) -> None:
        self.classification = msg

    def _fresh(self, msg: Any, image_s: float) -> Any:
        max_age = float(self.get_parameter("max_age_s").value)
        if msg is None or max_age <= 0:
            return msg
        return msg if abs(image_s - _stamp_s(msg)) <= max_age else None

    def on_image(self, msg) -> None:
        rgb = imgmsg_to_cv2(msg, "rgb8")
        stamp = _stamp_s(msg)
        out = draw(rgb, self._fresh(self.tracks, stamp), self._fresh(self.classification, stamp))
        self._pub.publish(cv2_to_imgmsg(out, "rgb8", header=msg.header))


NODE_CLASS = AnnotatorNode


def main(args=None) -> int:
    return run_node(AnnotatorNode, args)


if __name__ == "__main__":
    main()
