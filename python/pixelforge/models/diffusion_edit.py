"""Editing with a trained diffusion model, on its own samplers: img2img (SDEdit), inpainting
(RePaint), DDIM inversion, live previews. Mixed into :class:`~pixelforge.models.diffusion.Diffusion`.

Conventions (diffusers' and AUTOMATIC1111's): images float (N, C, H, W) in [0, 1]; a mask is 1
where the model repaints and 0 where the input is kept; ``strength`` s with N sampling steps runs
the last int(N·s) of them from the input noised to that step's timestep.

The denoising loop (``_denoise``) is the one ``sample`` runs: step i of the sampler's schedule
draws its noise from the stream ``seed + 1 + i``, so an edit that starts at step k continues
the same streams as plain sampling would.
"""
from __future__ import annotations

import numpy as np

from .. import _backend, ops
from .. import random as pfrandom
from .._validate import integer

MASK_VALUES = "0 (keep) or 1 (repaint)"


class DiffusionEditing:
    """img2img, inpaint, invert and the shared denoising loop with previews."""

    # ------------------------------------------------------------------ shared loop
    def _preview(self, smp, out, t, x):
        """The x0 estimate of step t as float32 NumPy in [0, 1] (what a live preview shows)."""
        spec = smp._spec(t)
        x0 = (spec["cs"] * x + spec["cm"] * out).clip(-1, 1)
        return np.asarray(_backend.to_host((x0 + 1) / 2), np.float32)

    def _denoise(self, x, smp, indices, labels, w, seed, offset=0, *, callback=None, done=0, total=None,
                 after_step=None):
        """Run the sampler steps ``indices`` (positions in ``smp.timesteps``) on x (model space).

        after_step(x, i) may replace x after step i (inpainting). callback(step, total, preview)
        is called after every step with the x0 estimate; False stops: returns (x, previews,
        stopped)."""
        m = len(x)
        for k, i in enumerate(indices):
            t = int(smp.timesteps[i])
            out = self._eps(x, np.full(m, t), labels, w)
            preview = self._preview(smp, out, t, x) if callback is not None else None
            x = smp.step(out, t, x, seed=seed + 1 + i, offset=offset)
            if after_step is not None:
                x = after_step(x, i)
            if callback is not None and callback(done + k + 1, total, preview) is False:
                return x, preview, True
        return x, None, False

    # ------------------------------------------------------------------ checks
    def _edit_setup(self, images, labels, steps, guidance_scale, sampler, seed):
        x = self._check_images(images)
        n = len(x)
        y = self._check_labels(labels, n, required=False)
        if self.conditional and y is None:
            y = np.full(n, self.num_classes)   # no label: the unconditional ("null") class
        smp, steps, w = self._sampling(steps, guidance_scale, sampler)
        # the seed sample() derives from the same user seed: the same noise streams
        s = int(np.random.default_rng(seed).integers(0, 2 ** 62))
        return x, y, steps, w, smp, s

    def _model_space(self, x):
        return self._dev(x) * 2 - 1

    def _to_images(self, x):
        return self._host_images((x + 1) / 2)

    # ------------------------------------------------------------------ img2img
    def img2img(self, images, strength=0.6, *, seed=0, labels=None, steps=None, guidance_scale=None,
                sampler=None, callback=None):
        """SDEdit: the images (N, C, H, W) in [0, 1] noised to step N − int(N·strength) of the
        sampler's N-step schedule with ``pf.ops.add_noise``, then the remaining int(N·strength)
        steps. strength 0 returns the images unchanged; strength 1 is ``sample`` (same seed,
        same images). Conditional models take ``labels`` (default: no label). callback as in
        ``sample``. A float32 NumPy array (N, C, H, W) in [0, 1]."""
        s = self._check_strength(strength)
        self._check_callback(callback)
        x, y, steps, w, smp, sd = self._edit_setup(images, labels, steps, guidance_scale, sampler, seed)
        n_run = int(steps * s)
        if n_run == 0:
            return x.copy()
        if n_run == steps:
            return self.sample(len(x), seed=seed, labels=y if self.conditional else None, steps=steps,
                               guidance_scale=w, sampler=sampler, callback=callback)
        start = steps - n_run
        with self._inference():
            noise = pfrandom.randn(x.shape, seed=sd, offset=0, device=self.device)
            t0 = int(smp.timesteps[start])
            xt = ops.add_noise(self._model_space(x), noise, np.full(len(x), t0), self._acp)
            out, prev, stopped = self._denoise(xt, smp, range(start, steps), y, w, sd, callback=callback,
                                               total=n_run)
        return prev if stopped else self._to_images(out)

    # ------------------------------------------------------------------ inpainting
    def _check_mask(self, mask, n):
        mk = np.asarray(_backend.to_host(mask))
        if mk.dtype.kind not in "biuf":
            raise TypeError(f"mask: expected a numeric array, got dtype {mk.dtype}")
        c, h, w = self.image_shape
        if mk.ndim == 2:
            mk = mk[None, None]
        elif mk.ndim == 3:
            mk = mk[:, None]
        if mk.ndim != 4 or mk.shape[0] not in (1, n) or mk.shape[1] not in (1, c) or mk.shape[2:] != (h, w):
            raise ValueError(f"mask: expected shape (H, W), (N, H, W) or (N or 1, 1 or {c}, {h}, {w}) with "
                             f"H, W = {h}, {w}, got {np.shape(mask)}")
        mk = mk.astype(np.float32)
        if not np.isin(mk, (0.0, 1.0)).all():
            raise ValueError(f"mask: values must be {MASK_VALUES}")
        return np.broadcast_to(mk, (n, c, h, w)).copy()

    def inpaint(self, images, mask, *, seed=0, labels=None, steps=None, guidance_scale=None, sampler=None,
                jump_length=10, jump_n_sample=1, callback=None):
        """RePaint (Lugmayr et al. 2022) for a model trained without masks: at every step the
        kept region (mask 0) is the input noised to the step's level and the repainted region
        (mask 1) is the model's step. jump_length / jump_n_sample: RePaint's resampling (every
        jump_length steps go back jump_length steps with fresh noise, jump_n_sample − 1 times;
        1 / 1: none). The kept pixels come back bit-identical to the input. mask: (H, W),
        (N, H, W) or (N or 1, 1 or C, H, W) of 0 / 1. A float32 NumPy array (N, C, H, W)."""
        jl = integer(jump_length, "jump_length", min_value=1, wrong_type=ValueError)
        jn = integer(jump_n_sample, "jump_n_sample", min_value=1, wrong_type=ValueError)
        self._check_callback(callback)
        x, y, steps, w, smp, sd = self._edit_setup(images, labels, steps, guidance_scale, sampler, seed)
        mk = self._check_mask(mask, len(x))
        ops_list = repaint_schedule(steps, jl, jn)
        total = sum(1 for op, _ in ops_list if op == "step")
        jseed = sd ^ 0x5EED_1A1B
        m = len(x)
        size = int(x.size)
        with self._inference():
            x0 = self._model_space(x)
            keep = self._dev(1.0 - mk)
            rep = self._dev(mk)
            cur = pfrandom.randn(x.shape, seed=sd, offset=0, device=self.device)
            draws = 0

            def fresh_noise():  # the next draw of the jumps' and known region's own stream
                nonlocal draws
                draws += 1
                return pfrandom.randn(x.shape, seed=jseed, offset=draws * size, device=self.device)

            def known_at(t):  # the input at noise level t (t < 0: clean)
                return x0 if t < 0 else ops.add_noise(x0, fresh_noise(), np.full(m, t), self._acp)

            def compose(xs, i):  # after step i: the kept region at the step's new level
                return rep * xs + keep * known_at(smp.previous_timestep(int(smp.timesteps[i])))

            done, preview = 0, None
            for op, i in ops_list:
                if op == "step":
                    cur, preview, stopped = self._denoise(cur, smp, [i], y, w, sd, callback=callback, done=done,
                                                          total=total, after_step=compose)
                    done += 1
                    if stopped:
                        return np.where(mk > 0.5, preview, x).astype(np.float32)
                else:  # undo step i: from the level after it back to timestep t_i, fresh noise
                    t = int(smp.timesteps[i])
                    spec = smp._spec(t)
                    ratio = spec["a_t"] / spec["a_p"]
                    cur = (ratio ** 0.5) * cur + ((1.0 - ratio) ** 0.5) * fresh_noise()
        gen = self._to_images(cur)
        return np.where(mk > 0.5, gen, x).astype(np.float32)

    # ------------------------------------------------------------------ inversion
    def invert(self, images, *, steps=None, labels=None, guidance_scale=1.0):
        """DDIM inversion: the noise x_T (N, C, H, W) from which deterministic DDIM sampling with
        the same ``steps`` returns the images: ``sample(n, init_noise=invert(x), steps=...,
        sampler="ddim", clip_sample=False)`` reconstructs x up to the ODE's discretisation
        (digits, 64 images: mean abs error 0.009 at 50 steps, 0.003 at 200; clipping the x0
        estimates, the sampler's default, breaks the round trip near the noisy end).
        Runs the DDIM update backwards: from the clean level up the schedule, each step's noise
        prediction taken at the current point with the next timestep. A float32 NumPy array."""
        x, y, steps, w, smp, _ = self._edit_setup(images, labels, steps, guidance_scale, "ddim", 0)
        m = len(x)
        cur_a = smp.final_alpha_cumprod
        with self._inference():
            cur = self._model_space(x)
            for i in range(steps - 1, -1, -1):
                t = int(smp.timesteps[i])
                out = self._eps(cur, np.full(m, t), y, w)
                a_t = float(self._acp[t])
                cs, cm, es, em = smp._x0_eps_coefs(cur_a)
                x0 = cs * cur + cm * out
                eps = es * cur + em * out
                cur = (a_t ** 0.5) * x0 + ((1.0 - a_t) ** 0.5) * eps
                cur_a = a_t
        return np.asarray(_backend.to_host(cur), np.float32)


def repaint_schedule(steps, jump_length=1, jump_n_sample=1):
    """RePaint's order of operations over an N-step schedule: ("step", i) runs step i (position
    i -> i + 1), ("undo", i) re-noises back over step i. With r steps remaining (r = 0, j, 2j, ...
    < N − j) the last j steps are undone and redone, jump_n_sample − 1 times (RePaint's "jumps";
    diffusers' RePaintScheduler builds the same order)."""
    jumps = {r: jump_n_sample - 1 for r in range(0, steps - jump_length, jump_length)}
    out, r = [], steps
    while r >= 1:
        r -= 1
        out.append(("step", steps - 1 - r))
        if jumps.get(r, 0) > 0:
            jumps[r] -= 1
            for _ in range(jump_length):
                r += 1
                out.append(("undo", steps - r))
    return out
