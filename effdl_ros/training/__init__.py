"""On-device training: E2-Train (SMD, SLU, PSG), Early-Bird tickets, the trainer node's logic (no ROS).

resnet.py (CIFAR ResNet with SLU gates) · e2train.py (the training step) · psg.py · macs.py (executed
MAC counting) · early_bird.py · prune.py (physical pruning) · knobs.py (budget -> knobs) ·
replay_buffer.py · guard.py · online.py (fine-tuning a consumer's model) · checkpoint.py ·
experiments.py (the runs behind `train e2train` and `prune eb`; the benchmarks are effdl_ros.bench.training).
"""
