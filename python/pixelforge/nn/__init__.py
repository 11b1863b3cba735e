"""pf.nn: Module, Parameter and layers with torch's names, arguments and default initialisations.

Layers run on :mod:`pixelforge.functional`, which calls the pf.ops kernels (conv2d, attention,
bias_act) forward and backward.
"""
from . import init  # noqa: F401
from .layers import (ACTIVATIONS, GELU, Attention, BiasAct, Conv2d, ConvTranspose2d, Dropout, Embedding,  # noqa: F401
                     Flatten, GroupNorm, Identity, KVCache, LayerNorm, LeakyReLU, Linear, ModuleList, ReLU,
                     Sequential, Sigmoid, SiLU, Tanh, make_activation)
from .module import IncompatibleKeys, Module, Parameter  # noqa: F401
from . import utils  # noqa: F401,E402

__all__ = ["Module", "Parameter", "Linear", "Conv2d", "ConvTranspose2d", "GroupNorm", "LayerNorm", "Embedding",
           "Attention", "KVCache", "Sequential", "ModuleList", "Flatten", "Identity", "ReLU", "LeakyReLU", "SiLU",
           "GELU", "Tanh", "Sigmoid", "Dropout", "BiasAct", "make_activation", "init", "utils"]
