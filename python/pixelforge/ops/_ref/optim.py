"""Reference fused optimizer updates (NumPy or CuPy): the scalar rules of ops/_numba/optim.py
applied to whole [start, end) ranges of the flat buffers, float64 inside, stored back in the
buffers' dtype. The readable twin of the Numba kernels, and the GPU path where numba.cuda is
missing. Ranges and step counts are host (NumPy) arrays; the buffers may live on either device.
"""
import numpy as np

from ..._backend import xp_of


def adam_scalars(lr, beta1, beta2, steps):
    """Per-range step size lr / bc1 and 1 / sqrt(bc2) (steps: each range's step count, >= 1)."""
    steps = np.asarray(steps, np.float64)
    return lr / (1.0 - beta1 ** steps), 1.0 / np.sqrt(1.0 - beta2 ** steps)


def adam_step(p, g, m, v, starts, ends, lr, beta1, beta2, eps, wd, decoupled, steps):
    xp = xp_of(p)
    ss, ib = adam_scalars(float(lr), float(beta1), float(beta2), steps)
    for r, (a, b) in enumerate(zip(np.asarray(starts).tolist(), np.asarray(ends).tolist())):
        pr, gr = p[a:b].astype(np.float64), g[a:b].astype(np.float64)
        if wd != 0.0:
            if decoupled:
                pr = pr * (1.0 - lr * wd)
            else:
                gr = gr + wd * pr
        mr = beta1 * m[a:b].astype(np.float64) + (1.0 - beta1) * gr
        vr = beta2 * v[a:b].astype(np.float64) + (1.0 - beta2) * gr * gr
        p[a:b] = pr - float(ss[r]) * mr / (xp.sqrt(vr) * float(ib[r]) + eps)
        m[a:b] = mr
        v[a:b] = vr


def sgd_step(p, g, buf, starts, ends, lr, momentum, dampening, wd, nesterov, first):
    first = np.asarray(first, np.bool_)
    for r, (a, b) in enumerate(zip(np.asarray(starts).tolist(), np.asarray(ends).tolist())):
        pr, gr = p[a:b].astype(np.float64), g[a:b].astype(np.float64)
        if wd != 0.0:
            gr = gr + wd * pr
        if momentum != 0.0:
            br = gr if first[r] else momentum * buf[a:b].astype(np.float64) + (1.0 - dampening) * gr
            buf[a:b] = br
            gr = gr + momentum * br if nesterov else br
        p[a:b] = pr - lr * gr


def ema_update(s, p, decay):
    s[...] = s.astype(np.float64) + (1.0 - decay) * (p.astype(np.float64) - s.astype(np.float64))
