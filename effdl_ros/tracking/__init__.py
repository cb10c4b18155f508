"""ROAM tracking: model, learned optimiser, online tracker, meta-training and OTB evaluation."""
