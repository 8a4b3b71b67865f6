"""Latency statistics: histograms and what they say. Pure numpy."""
