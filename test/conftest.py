"""Tests run on the in-process backend unless a test asks for another."""
import os

os.environ.setdefault("EFFDL_ROS_BACKEND", "inproc")
