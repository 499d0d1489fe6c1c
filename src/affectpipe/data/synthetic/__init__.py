"""Synthetic look-alikes of the real datasets, in their exact on-disk formats."""
