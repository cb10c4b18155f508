"""Dual dynamic inference (DDI, Wang et al., IEEE JSTSP 2020, arXiv 1907.04523).

model.py (the gated ResNet for training), engine.py (inference that really skips, hard MAC ceiling),
budget_map.py (Budget -> MAC ceiling, calibration), train.py, checkpoint.py (safe loading), data.py;
the benchmark is effdl_ros.bench.ddi.
"""
