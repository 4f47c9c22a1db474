"""Datasets: readers (NASA layout, split files, flat layout), class maps, checks, synthetic data."""
