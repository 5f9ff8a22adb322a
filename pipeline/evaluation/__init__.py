"""Evaluation (layer 4): COCO keypoint AP and PCKh (``metrics``), top-down inference on boxes
(``inference``), networks and checkpoints evaluated on a validation set (``checkpoint_eval``),
per-joint pseudo-label accuracy (``label_accuracy``) and the paired bootstrap of an AP margin.

May import layers 0-3.
"""
