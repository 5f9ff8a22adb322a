"""Pictures and text for people (layer 4): skeleton drawings of pseudo labels, the demo figure,
the pseudo-label store summary and the synthetic benchmark's report.

May import layers 0-3.
"""
