"""Reference GEMM ops, written for clarity: NumPy (or CuPy) matmul in the input dtype.

Call them with float64 inputs to get the float64 reference the fast kernels are tested against.
"""
from __future__ import annotations

from ..._validate import xp_of


def gemm(a, b, trans_a, trans_b, bias, out):
    """out (batch, M, N) = op(a) @ op(b) (+ bias over the last axis); a, b 2-D or 3-D."""
    xp = xp_of(a)
    opa = xp.swapaxes(a, -1, -2) if trans_a else a
    opb = xp.swapaxes(b, -1, -2) if trans_b else b
    c = xp.matmul(opa, opb)
    if bias is not None:
        c = c + bias
    out[...] = c.reshape(out.shape)
    return out


def colsum(g):
    """(rows, cols) -> (cols,): the column sums."""
    return g.sum(axis=0)
