"""effdl_ros: energy-efficient deep learning nodes for ROS 2.

Layers (imports point downward only): algorithms (one sub-package per capability, no ROS),
runtime (the one seam to the middleware), nodes (thin adapters), cli (command line).
"""
__version__ = "0.1.0"
