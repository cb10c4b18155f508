"""Benchmarks: DLBench-style training-step timing, run comparison (host vs container), replay reports."""
