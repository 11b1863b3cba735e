"""pixelforge ops: every public op takes ``impl=`` ("auto", "cpu", "cuda", "numba", "ref").

The array decides the device (NumPy: CPU, CuPy: GPU); see :mod:`pixelforge._dispatch`.
Op modules load on first attribute access, so ``import pixelforge`` stays fast.
"""
import importlib

# public name -> module under pixelforge.ops
_OPS = {
    "bias_act": "bias_act", "bias_act_backward": "bias_act",
    "conv2d": "conv2d", "conv2d_backward": "conv2d", "conv_transpose2d": "conv2d",
    "conv_transpose2d_backward": "conv2d",
    "attention": "attention", "attention_backward": "attention",
    "reparameterize": "reparameterize", "reparameterize_backward": "reparameterize",
    "gaussian_kl": "reparameterize", "gaussian_kl_backward": "reparameterize",
    "add_noise": "add_noise", "get_velocity": "add_noise",
}

__all__ = sorted(_OPS)


def __getattr__(name):
    mod = _OPS.get(name)
    if mod is None:
        raise AttributeError(f"module 'pixelforge.ops' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_OPS))
