"""pixelforge ops: every public op takes ``impl=`` ("auto", "cpu", "cuda", "numba", "ref").

The array decides the device (NumPy: CPU, CuPy: GPU); see :mod:`pixelforge._dispatch`. The op
modules are light (NumPy and the references; compiled modules and Numba load on first use),
so they are imported here at once: ``pf.ops.conv2d`` is always the function, never the module
of the same name.
"""
import importlib

from .add_noise import add_noise, get_velocity
from .attention import attention, attention_backward
from .bias_act import bias_act, bias_act_backward
from .conv2d import conv2d, conv2d_backward, conv_transpose2d, conv_transpose2d_backward
from .group_norm import group_norm, group_norm_backward, layer_norm, layer_norm_backward
from .matmul import linear, linear_backward, matmul
from .reparameterize import gaussian_kl, gaussian_kl_backward, reparameterize, reparameterize_backward

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
    "group_norm": "group_norm", "group_norm_backward": "group_norm", "layer_norm": "group_norm",
    "layer_norm_backward": "group_norm",
}

__all__ = sorted(_OPS)


def _import_op_module(module: str):
    """The module ``pixelforge.ops.<module>`` (the package attribute of that name is the op)."""
    return importlib.import_module(f".{module}", __name__)
