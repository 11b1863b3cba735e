"""Scalar math written once, compiled for the CPU (njit) and the GPU (numba.cuda).

Plain Python functions with no closures: :func:`pixelforge.ops._numba.cpu_fn` and
:func:`~pixelforge.ops._numba.gpu_fn` compile them for each device.
"""
import math

# activation codes shared with kernels/bias_act/bias_act.h
LINEAR, RELU, LRELU, TANH, SIGMOID, SILU, GELU = range(7)


def act_forward(act, v, alpha):
    if act == RELU:
        return v if v > 0 else v * 0
    if act == LRELU:
        return v if v > 0 else v * alpha
    if act == TANH:
        return math.tanh(v)
    if act == SIGMOID:
        return 1 / (1 + math.exp(-v))
    if act == SILU:
        return v / (1 + math.exp(-v))
    if act == GELU:
        return 0.5 * v * (1 + math.erf(v * 0.7071067811865476))
    return v


def act_grad(act, v, alpha):
    if act == RELU:
        return 1.0 if v > 0 else 0.0
    if act == LRELU:
        return 1.0 if v > 0 else alpha
    if act == TANH:
        t = math.tanh(v)
        return 1 - t * t
    if act == SIGMOID:
        s = 1 / (1 + math.exp(-v))
        return s * (1 - s)
    if act == SILU:
        s = 1 / (1 + math.exp(-v))
        return s * (1 + v * (1 - s))
    if act == GELU:
        cdf = 0.5 * (1 + math.erf(v * 0.7071067811865476))
        pdf = math.exp(-0.5 * v * v) * 0.3989422804014327
        return cdf + v * pdf
    return 1.0


def bias_act_value(act, v, alpha, gain, clamp):
    y = act_forward(act, v, alpha) * gain
    if clamp >= 0:
        if y > clamp:
            y = clamp
        elif y < -clamp:
            y = -clamp
    return y


def bias_act_grad(act, v, g, alpha, gain, clamp):
    d = g * gain * act_grad(act, v, alpha)
    if clamp >= 0:
        y = act_forward(act, v, alpha) * gain
        if y > clamp or y < -clamp:
            d = d * 0
    return d
