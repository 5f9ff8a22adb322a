"""Pseudo labels as a product (layer 5): trained teachers plus PCM over a wild pool, written to a
Parquet store and a COCO keypoints JSON, with their quality against truth where there is one.
The Ray Data worker that runs the teachers at scale is ``actors.export_labeler``.

May import layers 0-4.
"""
