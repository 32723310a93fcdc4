"""Sample-quality metrics: the evaluator, FID/KID features, the per-data-set classifier, 2D metrics.

Usable outside training: nothing here knows the training loop or a tracker.
"""
