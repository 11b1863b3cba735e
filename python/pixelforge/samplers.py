"""Diffusion samplers: DDPM and DDIM, each step one fused kernel.

Both follow diffusers' DDPMScheduler / DDIMScheduler: timestep spacing "leading" (default:
arange(n) * (T // n), descending, + steps_offset), "linspace" or "trailing"; DDPM variance
"fixed_small"; clip_sample (default True) to clip_sample_range; DDIM set_alpha_to_one (default
True) and eta (default 0). Given the same noise a step equals theirs to float32 rounding (we
compute in float64 and round once).

``step(model_output, t, sample, *, seed=None, offset=0, noise=None)``: a stochastic step (DDPM at
t > 0, DDIM with eta > 0) takes its noise either from ``noise`` (same shape as sample) or from
``pf.random.randn(sample.shape, seed=seed, offset=offset)``, drawn inside the step's kernel.
model_output, sample, noise: (N, ...) arrays of one dtype (NumPy: float32/float64; CuPy: float32).

Implementations (``impl=``): "numba" (CPU njit parallel / numba.cuda; ops/_numba/sampling.py,
kernel ``step``) and "ref" (ops/_ref/samplers.py, the diffusers formulas in float64).
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _backend
from ._dispatch import NotBuilt, register, resolve, set_order
from ._validate import float_array, integer, real_number, same_device, same_dtype, same_shape
from .ops._ref import random as _rnd
from .ops._ref import samplers as _ref
from .random import check_stream_args
from .schedules import NoiseSchedule, round_coef

__all__ = ["DDPMSampler", "DDIMSampler", "PREDICTION_TYPES", "TIMESTEP_SPACINGS"]

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
set_order("sampler_step", "cpu", ("numba", "ref"))
set_order("sampler_step", "cuda", ("numba", "ref"))


def _int(v, name):
    if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iu":
        v = int(v)
    elif hasattr(v, "ndim") and getattr(v, "ndim", None) == 0 and hasattr(v, "item"):  # CuPy / torch scalar
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    return int(v)


TIMESTEP_SPACINGS = ("leading", "linspace", "trailing")


class _Sampler:
    def __init__(self, schedule, prediction_type, clip_sample, clip_sample_range, timestep_spacing="leading",
                 steps_offset=0):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule: expected a pf.schedules.NoiseSchedule, got {type(schedule).__name__}")
        if not isinstance(prediction_type, str):
            raise TypeError(f"prediction_type: expected a string, got {type(prediction_type).__name__}")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type: unknown {prediction_type!r}; expected one of {PREDICTION_TYPES}")
        if not isinstance(clip_sample, (bool, np.bool_)):
            raise TypeError(f"clip_sample: expected a bool, got {type(clip_sample).__name__}")
        self.schedule = schedule
        self.alphas_cumprod = schedule.alphas_cumprod
        self.num_train_timesteps = schedule.num_train_timesteps
        self.prediction_type = prediction_type
        self.clip_sample = bool(clip_sample)
        self.clip_sample_range = real_number(clip_sample_range, "clip_sample_range", positive=True)
        if timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"timestep_spacing: unknown {timestep_spacing!r}; expected one of {TIMESTEP_SPACINGS}")
        self.timestep_spacing = timestep_spacing
        self.steps_offset = integer(steps_offset, "steps_offset", min_value=0)
        self.num_inference_steps = None
        self.timesteps = np.arange(self.num_train_timesteps, dtype=np.int64)[::-1].copy()

    def set_timesteps(self, num_inference_steps):
        """``timesteps``, int64 (n,) descending, as diffusers spaces them: "leading"
        (arange(n) * (T // n))[::-1] + steps_offset; "linspace" round(linspace(0, T - 1, n))[::-1];
        "trailing" round(arange(T, 0, -T / n)) - 1."""
        n = _int(num_inference_steps, "num_inference_steps")
        if n < 1:
            raise ValueError(f"num_inference_steps: must be >= 1, got {n}")
        if n > self.num_train_timesteps:
            raise ValueError(f"num_inference_steps: {n} is more than the schedule's "
                             f"{self.num_train_timesteps} training timesteps")
        self.num_inference_steps = n
        T = self.num_train_timesteps
        if self.timestep_spacing == "leading":
            ts = (np.arange(n, dtype=np.int64) * (T // n))[::-1] + self.steps_offset
        elif self.timestep_spacing == "linspace":
            ts = np.linspace(0, T - 1, n).round()[::-1].astype(np.int64)
        else:
            ts = np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1
        if ts.max() >= T:
            raise ValueError(f"steps_offset: {self.steps_offset} pushes timestep {int(ts.max())} past the "
                             f"schedule's {T} training timesteps")
        self.timesteps = ts.copy()

    final_alpha_cumprod = 1.0  # alpha-bar before the first training timestep

    def _alpha(self, t):
        return self.final_alpha_cumprod if t < 0 else float(self.alphas_cumprod[t])

    def _check_t(self, t):
        t = _int(t, "t")
        if not 0 <= t < self.num_train_timesteps:
            raise ValueError(f"t: must lie in [0, {self.num_train_timesteps}), got {t}")
        return t

    def _x0_eps_coefs(self, a_t):
        b_t = 1.0 - a_t
        if self.prediction_type == "epsilon":
            return 1.0 / a_t ** 0.5, -(b_t ** 0.5) / a_t ** 0.5, 0.0, 1.0
        if self.prediction_type == "sample":
            return 0.0, 1.0, 1.0 / b_t ** 0.5, -(a_t ** 0.5) / b_t ** 0.5
        return a_t ** 0.5, -(b_t ** 0.5), b_t ** 0.5, a_t ** 0.5

    def step(self, model_output, t, sample, *, seed=None, offset=0, noise=None, impl="auto"):
        """One reverse step from timestep ``t``: returns prev_sample like ``sample`` (N, ...)."""
        sample = float_array(sample, "sample", min_ndim=1)
        model_output = float_array(model_output, "model_output")
        same_shape(model_output, "model_output", sample, "sample")
        if noise is not None:
            noise = float_array(noise, "noise")
            same_shape(noise, "noise", sample, "sample")
        device = same_device(sample=sample, model_output=model_output, noise=noise)
        same_dtype(sample=sample, model_output=model_output, noise=noise)
        if device == "cuda" and sample.dtype != np.float32:
            raise TypeError(f"sample: dtype {sample.dtype.name} not supported on cuda here; expected float32")
        spec = self._spec(self._check_t(t))
        gen = None
        if spec["pn"] != 0.0:
            if noise is None and seed is None:
                raise ValueError("seed: this step adds noise; pass seed= (pf.random stream) or noise=")
            if noise is not None and seed is not None:
                raise ValueError("noise: pass either seed= or noise=, not both")
            if noise is None:
                _, _, seed, offset = check_stream_args(sample.shape, seed, offset)
                gen = (offset,) + _rnd.seed_key(seed)
        else:
            noise = None
            if seed is not None:
                check_stream_args(sample.shape, seed, offset)
        _, fn = resolve("sampler_step", device, impl)
        return fn(spec, model_output, sample, noise, gen)


class DDPMSampler(_Sampler):
    """DDPM ancestral sampling (diffusers' DDPMScheduler, variance "fixed_small").

    schedule: NoiseSchedule; prediction_type "epsilon" | "v_prediction" | "sample";
    clip_sample clamps the predicted x0 to [-clip_sample_range, clip_sample_range].
    Without set_timesteps every training timestep is visited (prev = t - 1).
    """

    def __init__(self, schedule, prediction_type="epsilon", clip_sample=True, clip_sample_range=1.0,
                 timestep_spacing="leading", steps_offset=0):
        super().__init__(schedule, prediction_type, clip_sample, clip_sample_range, timestep_spacing, steps_offset)

    def previous_timestep(self, t):
        if self.num_inference_steps is None:
            return t - 1
        idx = np.nonzero(self.timesteps == t)[0]
        if idx.size == 0:
            raise ValueError(f"t: {t} is not one of the sampler's timesteps (set_timesteps({self.num_inference_steps}))")
        i = int(idx[0])
        return int(self.timesteps[i + 1]) if i + 1 < self.timesteps.size else -1

    def _spec(self, t):
        prev = self.previous_timestep(t)
        a_t, a_p = self._alpha(t), self._alpha(prev)
        b_t, b_p = 1.0 - a_t, 1.0 - a_p
        alpha_t = a_t / a_p
        beta_t = 1.0 - alpha_t
        cs, cm, _, _ = self._x0_eps_coefs(a_t)
        pn = max(b_p / b_t * beta_t, 1e-20) ** 0.5 if t > 0 else 0.0
        return dict(kind="ddpm", t=t, a_t=a_t, a_p=a_p, pred=self.prediction_type, clip=self.clip_sample,
                    clip_range=self.clip_sample_range, eta=None,
                    cs=cs, cm=cm, px0=a_p ** 0.5 * beta_t / b_t, ps=alpha_t ** 0.5 * b_p / b_t, pm=0.0, pn=pn)


class DDIMSampler(_Sampler):
    """DDIM (diffusers' DDIMScheduler, set_alpha_to_one=True): deterministic at eta=0.

    schedule: NoiseSchedule; prediction_type "epsilon" | "v_prediction" | "sample"; clip_sample
    clamps x0 to [-clip_sample_range, clip_sample_range]; eta >= 0 scales the DDPM-like noise.
    set_timesteps(n) must be called before step (prev = t - T // n).
    """

    def __init__(self, schedule, prediction_type="epsilon", clip_sample=True, eta=0.0, clip_sample_range=1.0,
                 timestep_spacing="leading", steps_offset=0, set_alpha_to_one=True):
        super().__init__(schedule, prediction_type, clip_sample, clip_sample_range, timestep_spacing, steps_offset)
        self.eta = real_number(eta, "eta", min_value=0.0)
        if not isinstance(set_alpha_to_one, (bool, np.bool_)):
            raise TypeError(f"set_alpha_to_one: expected a bool, got {type(set_alpha_to_one).__name__}")
        # diffusers: the last step goes to alpha-bar 1 (a clean image) or to alphas_cumprod[0]
        self.final_alpha_cumprod = 1.0 if set_alpha_to_one else float(self.alphas_cumprod[0])

    def previous_timestep(self, t):
        """The timestep a step from t lands on: t − T // n (diffusers' DDIM, any spacing); -1
        and below mean the clean image."""
        if self.num_inference_steps is None:
            raise ValueError("num_inference_steps: call set_timesteps(n) before step()")
        return t - self.num_train_timesteps // self.num_inference_steps

    def _spec(self, t):
        prev = self.previous_timestep(t)
        a_t, a_p = self._alpha(t), self._alpha(prev)
        b_t, b_p = 1.0 - a_t, 1.0 - a_p
        cs, cm, es, em = self._x0_eps_coefs(a_t)
        var = (b_p / b_t) * (1.0 - a_t / a_p)
        std = self.eta * var ** 0.5
        dirc = max(1.0 - a_p - std ** 2, 0.0) ** 0.5
        return dict(kind="ddim", t=t, a_t=a_t, a_p=a_p, pred=self.prediction_type, clip=self.clip_sample,
                    clip_range=self.clip_sample_range, eta=self.eta,
                    cs=cs, cm=cm, px0=a_p ** 0.5, ps=dirc * es, pm=dirc * em, pn=std if self.eta > 0 else 0.0)


# ----------------------------------------------------------------------------- impls
def _ref_step(xp_asarray):
    def run(spec, model_output, sample, noise, gen):
        if gen is not None:
            word0, k0, k1 = gen
            stream = _rnd.normal(sample.size, k0, k1, word0).astype(sample.dtype).reshape(sample.shape)
            noise = xp_asarray(stream)
        common = dict(a_t=spec["a_t"], a_p=spec["a_p"], pred=spec["pred"], clip=spec["clip"],
                      clip_range=spec["clip_range"])
        if spec["kind"] == "ddpm":
            return _ref.ddpm_step(model_output, sample, noise, t=spec["t"], **common)
        return _ref.ddim_step(model_output, sample, noise, eta=spec["eta"], **common)
    return run


@register("sampler_step", "cpu", "ref")
def _load_ref():
    return _ref_step(np.asarray)


@register("sampler_step", "cuda", "ref")
def _load_ref_gpu():
    cp = _backend.cupy()
    if cp is None:
        raise NotBuilt("CuPy with a GPU is not available")
    return _ref_step(cp.asarray)


def kernel_coefs(spec, dtype):
    """The fused kernel's scalars for one step (rounded to 29 bits for float32 data)."""
    out = {k: round_coef(float(spec[k]), dtype) for k in ("cs", "cm", "px0", "ps", "pm", "pn")}
    out["clip"] = bool(spec["clip"])
    out["r"] = float(spec["clip_range"])
    return out


def _nb():
    if _backend.numba_version() is None:
        raise NotBuilt("numba is not installed")
    from .ops._numba import sampling  # noqa: PLC0415
    return sampling


@register("sampler_step", "cpu", "numba")
def _load_numba():
    nb = _nb()
    return lambda spec, m, s, noise, gen: nb.step_cpu(s, m, noise, gen, kernel_coefs(spec, s.dtype))


@register("sampler_step", "cuda", "numba")
def _load_numba_gpu():
    if not _backend.numba_cuda_available():
        raise NotBuilt("numba.cuda has no GPU")
    nb = _nb()
    return lambda spec, m, s, noise, gen: nb.step_gpu(s, m, noise, gen, kernel_coefs(spec, s.dtype))
