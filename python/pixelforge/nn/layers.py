"""Layers with torch's constructor arguments and default initialisations.

Shapes: Linear (*, in) -> (*, out); Conv2d (N, Cin, H, W) -> (N, Cout, Ho, Wo);
GroupNorm (N, C, *); LayerNorm (*, normalized_shape); Embedding (*) int -> (*, dim);
Attention (B, L, C) -> (B, L, C).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from .. import functional as F
from .._validate import integer
from ..ops.bias_act import ACTIVATIONS as _ACTS
from ..tensor import _new, _xp, cat, is_grad_enabled
from . import init
from .module import Module, Parameter

__all__ = ["Linear", "Conv2d", "ConvTranspose2d", "GroupNorm", "LayerNorm", "Embedding", "Attention", "KVCache",
           "Sequential", "ModuleList", "Flatten", "Identity", "ReLU", "LeakyReLU", "SiLU", "GELU", "Tanh",
           "Sigmoid", "Dropout", "BiasAct", "make_activation", "ACTIVATIONS"]


def _pos_int(v, name):
    return integer(v, name, min_value=1, wrong_type=ValueError)


def _pair(v, name, minimum=0):
    t = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != 2 or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < minimum for i in t):
        raise ValueError(f"{name}: expected an int >= {minimum} or a pair of them, got {v!r}")
    return tuple(int(i) for i in t)


class Linear(Module):
    """``y = x @ weight.T + bias``; weight (out, in) and bias ~ U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        self.in_features = _pos_int(in_features, "in_features")
        self.out_features = _pos_int(out_features, "out_features")
        self.weight = Parameter(init.kaiming_uniform((out_features, in_features), dtype=dtype))
        bound = 1 / math.sqrt(in_features)
        self.bias = Parameter(init.uniform((out_features,), bound, dtype)) if bias else None
        if not bias:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class _ConvBase(Module):
    """What Conv2d and ConvTranspose2d share: argument checks, attributes and torch's init
    (kaiming-uniform weight; bias uniform in +-1/sqrt(fan_in), where fan_in comes from weight
    dim 1 for both, as in torch)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, dtype, transposed):
        super().__init__()
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode: only 'zeros' is supported, got {padding_mode!r}")
        self.in_channels = _pos_int(in_channels, "in_channels")
        self.out_channels = _pos_int(out_channels, "out_channels")
        self.groups = _pos_int(groups, "groups")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups: {groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        self.dilation = _pair(dilation, "dilation", 1)
        shape = ((in_channels, out_channels // groups) if transposed else
                 (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = Parameter(init.kaiming_uniform(shape, dtype=dtype))
        fan_in, _ = init.fans(shape)
        self.bias = Parameter(init.uniform((out_channels,), 1 / math.sqrt(fan_in), dtype)) if bias else None
        if not bias:
            self.register_parameter("bias", None)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}")


class Conv2d(_ConvBase):
    """2-D convolution on pf.ops.conv2d; weight (out, in/groups, kH, kW), torch's init."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype, transposed=False)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvBase):
    """Transposed convolution on pf.ops.conv_transpose2d; weight (in, out/groups, kH, kW)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype, transposed=True)
        self.output_padding = _pair(output_padding, "output_padding", 0)

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


class GroupNorm(Module):
    """torch's GroupNorm. ``forward(x, act=None, alpha=None)`` may apply an activation in the same
    fused pass; :class:`Sequential` does that for a GroupNorm directly followed by an activation."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32):
        super().__init__()
        self.num_groups = _pos_int(num_groups, "num_groups")
        self.num_channels = _pos_int(num_channels, "num_channels")
        if num_channels % num_groups:
            raise ValueError(f"num_groups: {num_groups} must divide num_channels={num_channels}")
        self.eps = float(eps)
        self.affine = bool(affine)
        if affine:
            self.weight = Parameter(np.ones(num_channels, dtype))
            self.bias = Parameter(np.zeros(num_channels, dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x, act=None, alpha=None):
        c = x.shape[1] if len(x.shape) >= 2 else None
        if c != self.num_channels:
            raise ValueError(f"input: GroupNorm expects (N, {self.num_channels}, *), got shape {tuple(x.shape)}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps, act=act, alpha=alpha)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=np.float32):
        super().__init__()
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(_pos_int(s, "normalized_shape") for s in normalized_shape)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class Embedding(Module):
    """A lookup table (num_embeddings, embedding_dim) ~ N(0, 1); the padding row starts at zero."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype=np.float32):
        super().__init__()
        self.num_embeddings = _pos_int(num_embeddings, "num_embeddings")
        self.embedding_dim = _pos_int(embedding_dim, "embedding_dim")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx: {padding_idx} out of range for {num_embeddings} embeddings")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        w = init.normal((num_embeddings, embedding_dim), dtype=dtype)
        if padding_idx is not None:
            w[padding_idx] = 0
        self.weight = Parameter(w)

    def forward(self, idx):
        return F.embedding(idx, self.weight, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class KVCache:
    """Keys and values of the positions seen so far, for step-by-step decoding with
    :class:`Attention`: k, v (B, Hkv, L, D) Tensors, grown by each forward call.

    Without autograd (sampling) they are views of buffers with room for 32 more positions:
    appending a position copies only that position (concatenating would copy the whole cache
    every step: a quarter of a 196-token decode went there), and the attention kernel reads
    the views in place. With autograd on, and a key that requires grad, positions are
    concatenated so gradients flow."""

    __slots__ = ("k", "v", "_kb", "_vb")

    def __init__(self):
        self.k = None
        self.v = None
        self._kb = self._vb = None

    def __len__(self):
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k, v):
        if self.k is not None and k.shape[:2] != self.k.shape[:2]:
            raise ValueError(f"kv_cache: batch/heads {tuple(k.shape[:2])} differ from the cache's "
                             f"{tuple(self.k.shape[:2])}")
        if is_grad_enabled() and (k.requires_grad or v.requires_grad):
            self._kb = self._vb = None
            self.k, self.v = (k, v) if self.k is None else (cat([self.k, k], dim=2), cat([self.v, v], dim=2))
            return self.k, self.v
        kd, vd = k.data, v.data
        n, add = len(self), kd.shape[2]
        if self._kb is None or n + add > self._kb.shape[2] or self._kb.dtype != kd.dtype:
            xp = _xp(kd)
            cap = n + add + 32
            kb = xp.empty(kd.shape[:2] + (cap,) + kd.shape[3:], kd.dtype)
            vb = xp.empty(vd.shape[:2] + (cap,) + vd.shape[3:], vd.dtype)
            if n:
                kb[:, :, :n] = self.k.data
                vb[:, :, :n] = self.v.data
            self._kb, self._vb = kb, vb
        self._kb[:, :, n:n + add] = kd
        self._vb[:, :, n:n + add] = vd
        self.k, self.v = _new(self._kb[:, :, :n + add]), _new(self._vb[:, :, :n + add])
        return self.k, self.v

    def reset(self):
        self.k = self.v = None
        self._kb = self._vb = None


class Attention(Module):
    """Multi-head self-attention over (B, L, C) on pf.ops.attention.

    One projection makes q (num_heads heads) and k, v (num_kv_heads heads; fewer heads =
    grouped-query attention), then out_proj. ``causal``: position i attends to j <= i.
    ``forward(x, kv_cache=cache)`` appends this call's keys/values to ``cache`` (a
    :class:`KVCache`) and attends over everything cached: feed one token at a time to decode.
    """

    def __init__(self, embed_dim, num_heads, bias=True, causal=False, num_kv_heads=None, dtype=np.float32):
        super().__init__()
        self.embed_dim = _pos_int(embed_dim, "embed_dim")
        self.num_heads = _pos_int(num_heads, "num_heads")
        if embed_dim % num_heads:
            raise ValueError(f"num_heads: {num_heads} must divide embed_dim={embed_dim}")
        self.num_kv_heads = num_heads if num_kv_heads is None else _pos_int(num_kv_heads, "num_kv_heads")
        if num_heads % self.num_kv_heads:
            raise ValueError(f"num_kv_heads: {num_kv_heads} must divide num_heads={num_heads}")
        self.head_dim = embed_dim // num_heads
        self.causal = bool(causal)
        kv = self.num_kv_heads * self.head_dim
        # torch's MultiheadAttention: xavier-uniform in-projection with zero bias
        self.in_proj = Linear(embed_dim, embed_dim + 2 * kv, bias=bias, dtype=dtype)
        self.in_proj.weight.data[...] = init.xavier_uniform((embed_dim + 2 * kv, embed_dim), dtype=dtype)
        if bias:
            self.in_proj.bias.data[...] = 0
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if bias:
            self.out_proj.bias.data[...] = 0

    def forward(self, x, kv_cache=None, causal=None):
        if len(x.shape) != 3 or x.shape[2] != self.embed_dim:
            raise ValueError(f"x: Attention expects (B, L, {self.embed_dim}), got shape {tuple(x.shape)}")
        b, l, c = x.shape
        h, hkv, d = self.num_heads, self.num_kv_heads, self.head_dim
        qkv = self.in_proj(x)
        is_causal = self.causal if causal is None else bool(causal)
        if kv_cache is None:
            return self.out_proj(F._packed_attention(qkv, h, hkv, is_causal))
        q = qkv[:, :, :c].reshape(b, l, h, d).transpose(1, 2)
        k = qkv[:, :, c:c + hkv * d].reshape(b, l, hkv, d).transpose(1, 2)
        v = qkv[:, :, c + hkv * d:].reshape(b, l, hkv, d).transpose(1, 2)
        k, v = kv_cache.append(k, v)
        o = F.attention(q, k, v, is_causal=is_causal)
        return self.out_proj(o.transpose(1, 2).reshape(b, l, c))

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, causal={self.causal}"


class Sequential(Module):
    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise TypeError(f"modules[{i}]: expected a pf.nn.Module, got {type(m).__name__}")
                self.add_module(str(i), m)

    def forward(self, x):
        mods = list(self._modules.values())
        i, n = 0, len(mods)
        while i < n:
            m = mods[i]
            if i + 1 < n and type(m) is GroupNorm:
                fused = _fusable_act(mods[i + 1])
                if fused is not None:  # GroupNorm + activation: one kernel pass each way
                    x = m(x, act=fused[0], alpha=fused[1])
                    i += 2
                    continue
            x = m(x)
            i += 1
        return x

    def __getitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*mods[i])
        return mods[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, m):
        self.add_module(str(len(self._modules)), m)
        return self


def _fusable_act(m):
    """(bias_act name, alpha) for an activation layer a GroupNorm can apply in its own pass."""
    t = type(m)
    if t is SiLU:
        return "silu", None
    if t is ReLU:
        return "relu", None
    if t is LeakyReLU:
        return "lrelu", m.negative_slope
    if t is Tanh:
        return "tanh", None
    if t is Sigmoid:
        return "sigmoid", None
    if t is GELU and m.approximate == "none":
        return "gelu", None
    return None


class ModuleList(Module):
    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, m):
        if not isinstance(m, Module):
            raise TypeError(f"module: expected a pf.nn.Module, got {type(m).__name__}")
        self.add_module(str(len(self._modules)), m)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


class Identity(Module):
    def forward(self, x):
        return x


class ReLU(Module):
    def __init__(self, inplace=False):
        super().__init__()

    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


class SiLU(Module):
    def __init__(self, inplace=False):
        super().__init__()

    def forward(self, x):
        return F.silu(x)


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate: expected 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Dropout(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: dropout probability must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)


class BiasAct(Module):
    """StyleGAN2's fused bias + activation + gain as a layer: a learnable bias (channels,) along
    ``dim`` and :func:`pixelforge.functional.bias_act`."""

    def __init__(self, channels, act="linear", dim=1, alpha=None, gain=None, clamp=None, dtype=np.float32):
        super().__init__()
        if act not in _ACTS:
            raise ValueError(f"act: unknown activation {act!r}; expected one of {tuple(_ACTS)}")
        self.act, self.dim, self.alpha, self.gain, self.clamp = act, dim, alpha, gain, clamp
        self.bias = Parameter(np.zeros(_pos_int(channels, "channels"), dtype))

    def forward(self, x):
        return F.bias_act(x, self.bias, self.dim, self.act, self.alpha, self.gain, self.clamp)


ACTIVATIONS = {"relu": ReLU, "lrelu": LeakyReLU, "leaky_relu": LeakyReLU, "silu": SiLU, "swish": SiLU,
               "gelu": GELU, "tanh": Tanh, "sigmoid": Sigmoid, "linear": Identity, "identity": Identity}


def make_activation(name, **kwargs):
    """An activation layer by name ("relu", "lrelu", "silu", "gelu", "tanh", "sigmoid", "linear")."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected an activation name, got {type(name).__name__}")
    cls = ACTIVATIONS.get(name.lower())
    if cls is None:
        raise ValueError(f"name: unknown activation {name!r}; expected one of {tuple(ACTIVATIONS)}")
    return cls(**kwargs)

