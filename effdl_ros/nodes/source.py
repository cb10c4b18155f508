"""source: publishes sensor_msgs/Image from a frame folder, a video file or a camera at a set rate.

Topic `image` (sensor data QoS: best effort, keep last 5). Parameters: input (folder, video, or
camera index), rate_hz, loop, max_frames (0 = all), resize_width (0 = native), frame_id, encoding.
"""
from __future__ import annotations

from effdl_ros.nodekit.entry import run
from effdl_ros.nodekit.parameters import Param, declare
from effdl_ros.runtime import Node, SetParametersResult
from effdl_ros.runtime.images import cv2_to_imgmsg
from effdl_ros.runtime.messages import Header, Image
from effdl_ros.runtime.qos import qos_profile_sensor_data

PARAMETERS = (
    Param("input", "samples/vtest", "frame folder, video file or camera index (relative paths resolve "
          "against the package share folder)"),
    Param("rate_hz", 10.0, "frames published per second", range=(1e-3, 1000.0)),
    Param("loop", True, "start again at the end of a folder or video"),
    Param("max_frames", 0, "stop after this many frames (0 = all)", range=(0, 2**31 - 1)),
    Param("resize_width", 0, "resize frames to this width, keeping the aspect (0 = native)", range=(0, 16384)),
    Param("frame_id", "camera", "header.frame_id of the published images"),
    Param("encoding", "rgb8", "image encoding", choices=("rgb8", "bgr8", "mono8")),
)


class SourceNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("source", **kwargs)
        declare(self, PARAMETERS)
        self.add_on_set_parameters_callback(self._validate)
        self._check_now()
        from effdl_ros.data.frames import FrameSource

        self._source = FrameSource(self.get_parameter("input").value,
                                   loop=self.get_parameter("loop").value,
                                   max_frames=self.get_parameter("max_frames").value,
                                   resize_width=self.get_parameter("resize_width").value)
        self._frames = iter(self._source)
        self.published = 0
        self._publisher = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self._timer = self.create_timer(1.0 / self.get_parameter("rate_hz").value, self._tick)

    def _check_now(self) -> None:
        result = self._validate([self.get_parameter(n) for n in ("rate_hz", "encoding", "max_frames")])
        if not result.successful:
            from effdl_ros.errors import ConfigError

            raise ConfigError(f"{self.get_fully_qualified_name()}: {result.reason}")

    @staticmethod
    def _validate(params) -> SetParametersResult:
        for p in params:
            if p.name == "rate_hz" and not (0.0 < p.value <= 1000.0):
                return SetParametersResult(successful=False, reason="rate_hz must be in (0, 1000]")
            if p.name == "encoding" and p.value not in ("rgb8", "bgr8", "mono8"):
                return SetParametersResult(successful=False, reason="encoding must be rgb8, bgr8 or mono8")
            if p.name == "max_frames" and p.value < 0:
                return SetParametersResult(successful=False, reason="max_frames must be >= 0")
        return SetParametersResult(successful=True)

    def _tick(self) -> None:
        import cv2

        frame = next(self._frames, None)
        if frame is None:
            self.get_logger().info(f"input exhausted after {self.published} frames", once=True)
            self._timer.cancel()
            return
        encoding = self.get_parameter("encoding").value
        if encoding == "rgb8":
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        elif encoding == "mono8":
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        header = Header(stamp=self.get_clock().now().to_msg(),
                        frame_id=self.get_parameter("frame_id").value)
        self._publisher.publish(cv2_to_imgmsg(frame, encoding, header=header))
        self.published += 1

    @property
    def finished(self) -> bool:
        return self._timer.is_canceled()

    def destroy_node(self) -> None:
        self._source.close()
        super().destroy_node()


NODE_CLASS = SourceNode


def main(args=None) -> int:
    return run(SourceNode, args)


if __name__ == "__main__":
    main()
