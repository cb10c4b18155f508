"""Our own implementation of rclpy's node API, shared by the dds and inproc backends.

Only the transport differs between them (backends/dds.py, backends/inproc.py); parameters, clocks,
timers, logging and the executor live here once.
"""
