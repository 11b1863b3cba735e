"""Weight initialisations with torch's formulas, drawn from one seedable NumPy generator.

``manual_seed(s)`` makes layer construction reproducible. The draws are not torch's (the
generators differ); tests copy weights into torch instead of relying on equal draws.
"""
from __future__ import annotations

import math

import numpy as np

_state = {"rng": np.random.default_rng()}


def manual_seed(seed: int) -> None:
    """Reseed the generator used by every layer's default initialisation."""
    _state["rng"] = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    return _state["rng"]


def fans(shape) -> tuple:
    """(fan_in, fan_out) as torch computes them: dim 1 and dim 0 times the receptive field."""
    if len(shape) < 2:
        raise ValueError(f"fans: need at least 2 dims, got shape {tuple(shape)}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def uniform(shape, bound, dtype=np.float32):
    return generator().uniform(-bound, bound, size=shape).astype(dtype)


def kaiming_uniform(shape, a=math.sqrt(5), dtype=np.float32):
    """torch.nn.init.kaiming_uniform_(w, a) with leaky_relu gain: bound = gain * sqrt(3 / fan_in)."""
    fan_in, _ = fans(shape)
    gain = math.sqrt(2.0 / (1 + a * a))
    bound = gain * math.sqrt(3.0 / fan_in) if fan_in else 0.0
    return uniform(shape, bound, dtype)


def xavier_uniform(shape, gain=1.0, dtype=np.float32):
    fan_in, fan_out = fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
    return uniform(shape, bound, dtype)


def normal(shape, std=1.0, dtype=np.float32):
    return (generator().standard_normal(shape) * std).astype(dtype)
