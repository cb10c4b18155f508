"""Multi-source domain adaptation for classifiers: MDDA (Zhao et al., AAAI 2020, arXiv 1911.11554).

domains.py (digit domains), nets.py (encoder, classifier, critic), wgan_gp.py (losses), mdda.py (the
four stages), ot_distance.py (exact OT distances with POT); the benchmark is effdl_ros.bench.adaptation.
"""
