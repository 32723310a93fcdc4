"""Data sets (image sets in memory, 2D mixtures on the fly) behind one contract (see ``batches``)."""
