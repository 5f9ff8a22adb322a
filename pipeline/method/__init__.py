"""The SSPCM method (layer 3): the training step of each method written once against an executor
(``schedule``), PCM (``pcm``), SSCO and Joint Cutout (``ssco``), and the pseudo labeler that turns
teacher heatmaps into hard views and targets (``pseudo_labels``).

May import layers 0-2 (``config``, ``geometry``, ``store``, ``data``, ``models``).
"""
