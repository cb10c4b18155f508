"""Real ROS 2: the runtime's node API is rclpy's own, re-exported unchanged."""
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult  # noqa: F401
from rclpy import init, ok, shutdown, spin, spin_once, spin_until_future_complete  # noqa: F401
from rclpy.clock import Clock  # noqa: F401
from rclpy.context import Context  # noqa: F401
from rclpy.duration import Duration  # noqa: F401
from rclpy.executors import SingleThreadedExecutor  # noqa: F401
from rclpy.node import Node  # noqa: F401
from rclpy.parameter import Parameter  # noqa: F401
from rclpy.time import Time  # noqa: F401
