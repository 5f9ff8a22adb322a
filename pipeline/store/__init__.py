"""What outlives a process (layer 1): the Parquet pseudo-label store, checkpoint directories on a
local disk or a pyarrow filesystem, and atomic file writes.

Imports only pyarrow, torch, numpy and layer 0 (``pipeline.config``).
"""
