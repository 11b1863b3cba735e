"""Reference scaled dot-product attention, NumPy or CuPy, float64 with a materialized softmax.

q: (B, H, Lq, D); k, v: (B, Hkv, Lk, D) with H % Hkv == 0 (query head h uses kv head
h // (H // Hkv)); causal: query i sees keys j <= i + (Lk - Lq).
out = softmax(scale * q k^T) v; lse = logsumexp of the scaled, masked scores per query row.
"""
import numpy as np

from ..._validate import xp_of


def _expand_kv(xp, k, groups):
    # (B, Hkv, Lk, D) -> (B, H, Lk, D): each kv head repeated for its query heads
    return xp.repeat(k, groups, axis=1) if groups > 1 else k


def _scores(q, k, causal, scale):
    """Scaled scores (B, H, Lq, Lk) in float64, masked entries -inf."""
    xp = xp_of(q)
    q64, k64 = q.astype(xp.float64), k.astype(xp.float64)
    groups = q.shape[1] // k.shape[1]
    s = xp.matmul(q64, xp.swapaxes(_expand_kv(xp, k64, groups), -1, -2)) * scale
    if causal:
        lq, lk = q.shape[2], k.shape[2]
        i = xp.arange(lq)[:, None]
        j = xp.arange(lk)[None, :]
        s = xp.where(j > i + (lk - lq), -xp.inf, s)
    return s


def _lse_dtype(x):
    return np.float64 if x.dtype == np.float64 else np.float32


def attention(q, k, v, causal, scale, return_lse=False):
    xp = xp_of(q)
    groups = q.shape[1] // k.shape[1]
    s = _scores(q, k, causal, scale)
    m = s.max(axis=-1, keepdims=True)
    p = xp.exp(s - m)
    denom = p.sum(axis=-1, keepdims=True)
    out = xp.matmul(p / denom, _expand_kv(xp, v.astype(xp.float64), groups)).astype(q.dtype)
    if not return_lse:
        return out
    lse = (m + xp.log(denom))[..., 0]
    return out, lse.astype(_lse_dtype(q))


def attention_backward(grad_out, q, k, v, out, lse, causal, scale):
    """Gradients (dq, dk, dv) from the forward's ``out`` and ``lse`` (FlashAttention's form:
    P = exp(S - lse), dS = P * (dO V^T - rowsum(dO * O)))."""
    xp = xp_of(q)
    groups = q.shape[1] // k.shape[1]
    f64 = xp.float64
    do, o = grad_out.astype(f64), out.astype(f64)
    q64 = q.astype(f64)
    k64 = _expand_kv(xp, k.astype(f64), groups)
    v64 = _expand_kv(xp, v.astype(f64), groups)
    p = xp.exp(_scores(q, k, causal, scale) - lse.astype(f64)[..., None])
    dv = xp.matmul(xp.swapaxes(p, -1, -2), do)
    dp = xp.matmul(do, xp.swapaxes(v64, -1, -2))
    di = (do * o).sum(axis=-1, keepdims=True)
    ds = p * (dp - di)
    dq = xp.matmul(ds, k64) * scale
    dk = xp.matmul(xp.swapaxes(ds, -1, -2), q64) * scale
    b, hkv, lk, d = k.shape
    # GQA: the query heads sharing a kv head add up
    dk = dk.reshape(b, hkv, groups, lk, d).sum(axis=2)
    dv = dv.reshape(b, hkv, groups, lk, d).sum(axis=2)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype)
