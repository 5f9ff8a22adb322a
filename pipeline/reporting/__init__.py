"""Pictures and text for people (layer 4): skeleton drawings of pseudo labels, the demo figure and
the pseudo-label store summary.

May import layers 0-3.
"""
