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
    "matmul": "matmul", "linear": "matmul", "linear_backward": "matmul",
}

__all__ = sorted(_OPS)


def _import_op_module(module: str):
    """Import ``pixelforge.ops.<module>`` and bind its public functions here. Importing a
    submodule sets a package attribute of the same name (``ops.conv2d`` the module), so the
    functions are bound again afterwards: ``pf.ops.conv2d`` is always the function."""
    mod = importlib.import_module(f".{module}", __name__)
    for public, owner in _OPS.items():
        if owner == module and hasattr(mod, public):
            globals()[public] = getattr(mod, public)
    return mod


def __getattr__(name):
    module = _OPS.get(name)
    if module is None:
        raise AttributeError(f"module 'pixelforge.ops' has no attribute {name!r}")
    mod = _import_op_module(module)
    if not hasattr(mod, name):
        raise AttributeError(f"pixelforge.ops.{module} does not define {name!r}")
    return globals()[name]


def __dir__():
    return sorted(set(globals()) | set(_OPS))
