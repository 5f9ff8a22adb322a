"""Coordinate spaces (layer 1): views (affine crops and their augmentation, moving heatmaps between
views) and the heatmap codec (Gaussian targets, argmax/quarter-offset/DARK decoding).

Imports only numpy, torch and OpenCV, and layer 0 (``pipeline.config``, ``pipeline.cli``).
"""
