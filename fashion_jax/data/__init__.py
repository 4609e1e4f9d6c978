"""Datasets: sources of rows, label vocabularies, splits and the grain input pipeline."""
