"""Reference DDPM / DDIM steps in float64, written as diffusers' DDPMScheduler.step and
DDIMScheduler.step define them (NumPy or CuPy arrays).

a_t = alphas_cumprod[t], a_p = alphas_cumprod[prev] (1 when prev < 0: DDPM's ``one`` and DDIM's
``final_alpha_cumprod`` with set_alpha_to_one=True), b = 1 - a.
x0: epsilon: (s - sqrt(b_t) m) / sqrt(a_t); v_prediction: sqrt(a_t) s - sqrt(b_t) m; sample: m;
then clipped to [-r, r] when clip_sample.
DDPM ("fixed_small"): prev = sqrt(a_p) beta_t / b_t x0 + sqrt(alpha_t) b_p / b_t s
                      + [t > 0] sqrt(max(b_p / b_t beta_t, 1e-20)) noise,  alpha_t = a_t / a_p, beta_t = 1 - alpha_t
DDIM: eps from the unclipped prediction; var = b_p / b_t (1 - a_t / a_p); std = eta sqrt(var);
      prev = sqrt(a_p) x0 + sqrt(1 - a_p - std^2) eps + [eta > 0] std noise
"""
import numpy as np


def _x0_eps(pred, s, m, a_t):
    b_t = 1.0 - a_t
    if pred == "epsilon":
        return (s - b_t ** 0.5 * m) / a_t ** 0.5, m
    if pred == "sample":
        return m, (s - a_t ** 0.5 * m) / b_t ** 0.5
    if pred == "v_prediction":
        return a_t ** 0.5 * s - b_t ** 0.5 * m, a_t ** 0.5 * m + b_t ** 0.5 * s
    raise ValueError(f"prediction_type: unknown {pred!r}")


def ddpm_step(model_output, sample, noise, *, t, a_t, a_p, pred, clip, clip_range):
    s, m = sample.astype(np.float64), model_output.astype(np.float64)
    x0, _ = _x0_eps(pred, s, m, a_t)
    if clip:
        x0 = x0.clip(-clip_range, clip_range)
    b_t, b_p = 1.0 - a_t, 1.0 - a_p
    alpha_t = a_t / a_p
    beta_t = 1.0 - alpha_t
    prev = (a_p ** 0.5 * beta_t / b_t) * x0 + (alpha_t ** 0.5 * b_p / b_t) * s
    if t > 0:
        var = max(b_p / b_t * beta_t, 1e-20)
        prev = prev + var ** 0.5 * noise.astype(np.float64)
    return prev.astype(sample.dtype)


def ddim_step(model_output, sample, noise, *, a_t, a_p, pred, clip, clip_range, eta):
    s, m = sample.astype(np.float64), model_output.astype(np.float64)
    x0, eps = _x0_eps(pred, s, m, a_t)
    if clip:
        x0 = x0.clip(-clip_range, clip_range)
    b_t, b_p = 1.0 - a_t, 1.0 - a_p
    var = (b_p / b_t) * (1.0 - a_t / a_p)
    std = eta * var ** 0.5
    prev = a_p ** 0.5 * x0 + (1.0 - a_p - std ** 2) ** 0.5 * eps
    if eta > 0 and std > 0:  # std == 0 (last step): diffusers adds 0 * noise
        prev = prev + std * noise.astype(np.float64)
    return prev.astype(sample.dtype)
