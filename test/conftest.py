"""Tests run on the in-process backend unless a test asks for another."""
import os

os.environ.setdefault("EFFDL_ROS_BACKEND", "inproc")
# Every DDS participant of the suite (and the node processes it starts) stays on the loopback
# interface: unicast discovery on localhost, never multicast on the machine's network.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
