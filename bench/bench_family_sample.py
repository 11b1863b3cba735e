"""Sampling 100 images against a PyTorch twin, each library timed in its own process (torch's
OpenMP and pixelforge's never share one):

- diffusion: 50-step DDIM (eta 0, clip_sample as configured) of pixelforge's ``m.sample`` against
  diffusers' ``DDIMScheduler`` driving the same EMA UNet, exported with ``m.save_diffusers`` and
  loaded as diffusers' ``UNet2DModel``; the scheduler built from the exported scheduler config.
  DDIM is asked for at both sizes (the 28x28 default is DDPM with 100 steps).
- transformer: decoding token by token against a KV cache (8x8: 64 pixel tokens; 28x28: 196
  codebook-patch tokens) with the family's temperature / top-k / top-p, pixelforge's
  ``m.sample`` against a torch twin (bench_family_step.py's, with its own KV cache) that chooses
  each token with the same rule (inverse CDF of the kept, renormalised probabilities, float64).

  python bench/bench_family_sample.py [--family diffusion transformer] [--sizes 8 28]
                                      [--threads 1 2] [--reps 2] [--rounds 1]

Models are untrained ``pf.models.create(family, (1, size, size))`` (digits defaults at 8x8,
Fashion-MNIST at 28x28; the 28x28 transformer's codebook learned by k-means as fit does, on
bench_family_step.py's batch data): the cost of sampling does not depend on the weights.

Agreement, checked before anything is timed:
- diffusion: after a brief fit (``AGREE_FIT_STEPS`` on the digits / Fashion-MNIST: an untrained
  UNet's DDIM trajectory amplifies float32 rounding ~10^4-fold over 50 steps, a denoising one
  does not), the same initial noise (``init_noise=``) through both loops; the final images in
  [0, 1] agree to 1e-4.
- transformer: the twin decodes with pixelforge's uniforms (the stream ``sample`` draws from its
  seed); pixelforge then decodes the twin's tokens through its own KV cache, and the logits of
  every prefix agree to 1e-5 relative. Identical images are reported too, not required: a
  uniform that falls within float32 rounding of a CDF boundary picks the neighbouring token,
  after which that image's decoding diverges.
When timing, each library draws its own noise / uniforms; both decode the same number of tokens
(no early stop), so the work is the same. Prints a markdown table: ms per 100 images, torch /
pixelforge.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from bench_family_step import batch, diffusers_twin, make_model, run_child, torch_transformer

N = 100
DDIM_STEPS = 50
AGREE_FIT_STEPS = 50


# ------------------------------------------------------------------------ diffusion
def torch_ddim(m):
    """sample(noise) -> images in [0, 1]: diffusers' DDIMScheduler driving the exported UNet."""
    import diffusers
    import torch
    unet, cfg = diffusers_twin(m)
    unet.eval()
    c = m.config
    # the exported config names the family's default sampler (DDPM at 28x28); DDIM is asked for
    sched = diffusers.DDIMScheduler.from_config(cfg, set_alpha_to_one=bool(c["set_alpha_to_one"]))

    @torch.inference_mode()
    def sample(noise, steps=DDIM_STEPS):
        sched.set_timesteps(steps)
        x = noise * sched.init_noise_sigma
        for t in sched.timesteps:
            x = sched.step(unet(x, t).sample, t, x, eta=float(c["eta"])).prev_sample
        return ((x + 1) / 2).clamp(0, 1)

    return sample


def pf_ddim(m, seed, steps=DDIM_STEPS, init_noise=None):
    return m.sample(N, seed=seed, sampler="ddim", steps=steps, init_noise=init_noise)


def training_images(size):
    """The digits at 8x8; Fashion-MNIST at 28x28 where it is installed, else uniform noise."""
    import pixelforge as pf
    if size == 28:
        try:
            return pf.data.load_fashion_mnist()[0][:5000]
        except (FileNotFoundError, OSError):
            pass
    return batch(size, 1024)


def check_diffusion(size):
    import torch
    m = make_model("diffusion", size)
    # a few steps of training first: an untrained UNet's DDIM trajectory is chaotic (measured:
    # each step agrees to 2e-6 from the same x, yet a 2e-6 difference grows to 1e-2 over 50
    # steps); once the network denoises at all, the trajectory contracts and agrees to ~3e-6
    m.fit(training_images(size), steps=AGREE_FIT_STEPS, progress=False)
    noise = np.random.default_rng(0).standard_normal((N, *m.image_shape)).astype(np.float32)
    ours = pf_ddim(m, 0, init_noise=noise)
    theirs = torch_ddim(m)(torch.from_numpy(noise)).numpy()
    d = np.abs(ours.astype(np.float64) - theirs)
    return {"images_max_abs": float(d.max()), "images_mean_abs": float(d.mean()),
            "ok": bool(d.max() < 1e-4)}


# ------------------------------------------------------------------------ transformer
def choose(logits, k, p, u):
    """pixelforge's ``_choose`` rule in torch: top-k, softmax, top-p (the top token always
    stays), then the token where the cumulative probability first reaches the uniform u (n, 1)."""
    import torch
    levels = logits.shape[1]
    if 0 < k < levels:
        kth = torch.sort(logits, dim=1).values[:, -k][:, None]
        logits = torch.where(logits < kth, -torch.inf, logits)
    probs = torch.softmax(logits, dim=1)
    if p < 1:
        sorted_p, order = torch.sort(probs, dim=1, descending=True)
        keep_sorted = torch.cumsum(sorted_p, dim=1) - sorted_p < p
        keep = torch.empty_like(keep_sorted).scatter_(1, order, keep_sorted)
        probs = torch.where(keep, probs, 0)
        probs = probs / probs.sum(dim=1, keepdim=True)
    return (torch.cumsum(probs, dim=1) < u).sum(dim=1).clamp(0, levels - 1)


def torch_decode(m, tnet, n, us=None, record=None):
    """(tokens (n, L), images (n, C, H, W) in [0, 1]) decoded one token at a time against the
    twin's KV cache; us: the uniforms (n, L) float64 (None: torch draws them); record: a list
    that gets each step's logits."""
    import torch
    c = m.config
    temp, k, p = float(c["temperature"]), int(c["top_k"]), float(c["top_p"])
    L = m.seq_len
    us = torch.rand(n, L, dtype=torch.float64) if us is None else us
    with torch.inference_mode():
        caches = [[None, None] for _ in tnet.blocks]
        cur = torch.full((n, 1), m.levels)                  # the start token
        out = torch.empty(n, L, dtype=torch.long)
        for i in range(L):
            logits = tnet(cur, start=i, caches=caches)[:, -1, :]
            if record is not None:
                record.append(logits.numpy().copy())
            nxt = choose(logits.double() / temp, k, p, us[:, i:i + 1])
            out[:, i] = nxt
            cur = nxt[:, None]
        c_, h, w = m.image_shape
        if m.patch == 1:
            img = out.reshape(n, h, w, c_).permute(0, 3, 1, 2).float() / (m.levels - 1)
        else:
            q = m.patch
            img = tnet.codebook[out].reshape(n, h // q, w // q, c_, q, q).permute(0, 3, 1, 4, 2, 5)
            img = img.reshape(n, c_, h, w)
    return out, img


def pf_logits(m, tokens):
    """pixelforge's logits of every prefix of tokens (n, L), decoding through its KV cache as
    ``sample`` does: (L, n, levels)."""
    import pixelforge as pf
    n = len(tokens)
    caches = [pf.nn.KVCache() for _ in m.net.blocks]
    cur = np.full((n, 1), m.levels, np.int64)
    out = []
    with m._inference():
        for i in range(m.seq_len):
            out.append(np.array(m.net(cur, start=i, caches=caches).data[:, -1, :]))
            cur = tokens[:, i:i + 1]
    return np.stack(out)


def check_transformer(size):
    import torch
    import pixelforge as pf
    m = make_model("transformer", size)
    tnet = torch_transformer(m)
    rng = np.random.default_rng(0)                          # sample(seed=0): its first draw seeds the uniforms
    us = pf.random.rand((N, m.seq_len), seed=int(rng.integers(0, 2 ** 62)), dtype="float64")
    record = []
    tokens, theirs = torch_decode(m, tnet, N, torch.from_numpy(us), record)
    ours = m.sample(N, seed=0)
    t_logits = np.stack(record)
    p_logits = pf_logits(m, tokens.numpy())
    rel = float(np.abs(p_logits.astype(np.float64) - t_logits).max() / np.abs(t_logits).max())
    same = float((np.abs(ours - theirs.numpy()).reshape(N, -1).max(axis=1) < 1e-6).mean())
    return {"logits_max_rel": rel, "images_identical": same, "ok": rel < 1e-5}


CHECKS = {"diffusion": check_diffusion, "transformer": check_transformer}


# ------------------------------------------------------------------------ timing
def child(spec):
    """ms per N images, median over reps, after one warm-up (Numba's compiles, torch's first
    calls) on a shorter run: 2 DDIM steps, or 4 images."""
    family, lib, size, threads, reps = spec["family"], spec["lib"], spec["size"], spec["threads"], spec["reps"]
    m = make_model(family, size)
    if lib == "pixelforge":
        if family == "diffusion":
            pf_ddim(m, 0, steps=2)
            run = lambda r: pf_ddim(m, r)               # noqa: E731
        else:
            m.sample(4, seed=0)
            run = lambda r: m.sample(N, seed=r)         # noqa: E731
    else:
        import torch
        torch.set_num_threads(threads)
        if family == "diffusion":
            sample = torch_ddim(m)
            sample(torch.randn(N, *m.image_shape), steps=2)
            run = lambda r: sample(torch.randn(N, *m.image_shape))          # noqa: E731
        else:
            tnet = torch_transformer(m)
            torch_decode(m, tnet, 4)
            run = lambda r: torch_decode(m, tnet, N)    # noqa: E731
    times = []
    for r in range(reps):
        t0 = time.perf_counter()
        run(r + 1)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", nargs="+", default=["diffusion", "transformer"], choices=["diffusion", "transformer"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 28])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=2, help="timed samplings per process")
    ap.add_argument("--rounds", type=int, default=1, help="processes per library and setting")
    ap.add_argument("--check-only", action="store_true", help="only the agreement checks")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(child(json.loads(a.child)))
        return
    import torch
    # the checks run both libraries in this process: torch's idle OpenMP threads spin while
    # pixelforge's run (measured: pixelforge's sampling 7x slower beside a 2-thread torch)
    torch.set_num_threads(1)
    rows = []
    for family in a.family:
        for size in a.sizes:
            agree = CHECKS[family](size)
            print(f"{family} {size}x{size}: agreement {agree}", flush=True)
            if not agree["ok"]:
                raise SystemExit(f"the {family} twin does not agree at {size}x{size}: {agree}")
            if a.check_only:
                continue
            for threads in a.threads:
                ms = {"pixelforge": [], "torch": []}
                for _ in range(a.rounds):
                    for lib in ms:
                        spec = {"family": family, "lib": lib, "size": size, "threads": threads, "reps": a.reps}
                        ms[lib].append(run_child(spec, threads, __file__))
                p, t = statistics.median(ms["pixelforge"]), statistics.median(ms["torch"])
                rows.append((family, size, threads, p, t))
                print(f"  {threads} thread(s): pixelforge {p:.0f} ms, torch {t:.0f} ms, torch/pf {t / p:.2f}",
                      flush=True)
    if rows:
        print(f"\n| sampling {N} images | threads | pixelforge ms | torch ms | torch ÷ pixelforge |")
        print("|---|---:|---:|---:|---:|")
        for family, size, threads, p, t in rows:
            what = f"DDIM {DDIM_STEPS} steps" if family == "diffusion" else "KV-cache decoding"
            print(f"| {family} {size}×{size}, {what} | {threads} | {p:.0f} | {t:.0f} | {t / p:.2f} |")


if __name__ == "__main__":
    main()
