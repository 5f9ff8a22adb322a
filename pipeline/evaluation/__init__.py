"""Evaluation (layer 4): COCO keypoint AP and PCKh (``metrics``), top-down inference on boxes
(``inference``), networks and checkpoints evaluated on a validation set (``checkpoint_eval``),
per-joint pseudo-label accuracy (``label_accuracy``), a run's pseudo labels against the truth
(``label_quality``) and the paired bootstrap of an AP margin (``paired_bootstrap``).

May import layers 0-3.
"""
