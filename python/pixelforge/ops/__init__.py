"""pixelforge ops: every public op takes ``impl=`` ("auto", "cpu", "cuda", "numba", "ref").

The array decides the device (NumPy: CPU, CuPy: GPU). See :mod:`pixelforge._dispatch`.
"""
from .bias_act import bias_act, bias_act_backward  # noqa: F401

__all__ = ["bias_act", "bias_act_backward"]
