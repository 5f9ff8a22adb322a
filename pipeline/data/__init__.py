"""Data (layer 2): skeletons as plain data, the COCO person reader and image checks, MPII/AIC
converters, image loading, the unlabeled wild pool and its Parquet packs, the top-down datasets
(crops, views, targets) and the synthetic people generator (``pipeline.data.synthetic``).

May import layers 0-1 (``config``, ``geometry``, ``store``) and other modules of this package.
"""
