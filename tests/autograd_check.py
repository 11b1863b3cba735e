"""Gradient checks for pf.Tensor code (used by test_tensor/test_functional/test_nn/test_optim):
float64 finite differences of ``sum(fn(*inputs) * R)`` against autograd, and torch comparisons."""
from __future__ import annotations

import numpy as np

import pixelforge as pf
from opcheck import finite_diff


def gradcheck(fn, *arrays, wrt=None, seed=0, eps=1e-6, rtol=1e-5, atol=1e-7):
    """Check autograd gradients of ``fn`` (Tensors -> Tensor) at float64 ``arrays`` against
    central differences. ``wrt``: indices of the inputs to differentiate (default: all float ones)."""
    arrays = [np.asarray(a) for a in arrays]
    if wrt is None:
        wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    ts = [pf.Tensor(a.copy(), requires_grad=(i in wrt)) for i, a in enumerate(arrays)]
    out = fn(*ts)
    r = np.random.default_rng(seed).standard_normal(out.shape)
    (out * pf.Tensor(r)).sum().backward()
    for i in wrt:
        def f(x, i=i):
            args = [pf.Tensor(x if j == i else arrays[j]) for j in range(len(arrays))]
            with pf.no_grad():
                return float((np.asarray(fn(*args).data, np.float64) * r).sum())
        num = finite_diff(f, arrays[i], eps=eps)
        got = ts[i].grad
        assert got is not None, f"input {i}: no gradient"
        assert got.shape == arrays[i].shape
        np.testing.assert_allclose(got, num, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")
    return out


def torch_compare(pf_fn, torch_fn, *arrays, wrt=None, rtol=1e-4, atol=1e-5, seed=1):
    """Values and gradients of pf_fn (on pf.Tensors) and torch_fn (on torch tensors) at the same
    inputs (float32 unless the arrays are float64)."""
    import torch  # noqa: PLC0415
    arrays = [np.asarray(a) for a in arrays]
    if wrt is None:
        wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    ps = [pf.Tensor(a.copy(), requires_grad=(i in wrt)) for i, a in enumerate(arrays)]
    ts = [torch.tensor(a.copy(), requires_grad=(i in wrt)) for i, a in enumerate(arrays)]
    po, to = pf_fn(*ps), torch_fn(*ts)
    np.testing.assert_allclose(po.numpy(), to.detach().numpy(), rtol=rtol, atol=atol, err_msg="values")
    r = np.random.default_rng(seed).standard_normal(po.shape).astype(po.dtype)
    (po * pf.Tensor(r)).sum().backward()
    (to * torch.from_numpy(r)).sum().backward()
    for i in wrt:
        np.testing.assert_allclose(ps[i].grad, ts[i].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")
