"""The generator families (arriving with the autograd layer) and their evaluation.

``pixelforge.models.evaluate`` judges generated 8x8 digits with a classifier trained on the
real ones (NumPy only)."""
