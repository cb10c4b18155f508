"""Transports for the local node (inproc, dds) and the thin re-export of real rclpy."""
