"""Semantic segmentation: the segmenter, its training (supervised and MADAN) and its budget knob."""

#: The segmentation node's default checkpoint (under models/): the shipped model that scores best on real
#: frames of sequences it never saw (issue 17; docs/segmentation.md).
DEFAULT_MODEL = "models/seg_supervised.pt"
