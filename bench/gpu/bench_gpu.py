"""GPU benchmarks for bench/gpu/run.sh: every op that exists, every dtype the op takes on the
GPU, timed with CUDA events (median of repeats after warm-up), against torch where installed.
Ops not built yet are reported as such, not silently skipped."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

import pixelforge as pf


def _timer(cp, fn, repeat=20, warmup=3):
    for _ in range(warmup):
        fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(repeat):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
    return float(np.median(times))


def _torch():
    try:
        import torch  # noqa: PLC0415
        return torch if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        return None


def _torch_time(torch, fn, repeat=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    return float(np.median(times))


def _cp_dtype(cp, name):
    if name == "bfloat16":
        try:
            import ml_dtypes  # noqa: PLC0415
            return np.dtype(ml_dtypes.bfloat16)
        except ImportError:
            return None
    return np.dtype(name)


def bench_bias_act(cp, torch, rows):
    n = 1 << 26
    for dtype in ("float32", "float16"):
        x = cp.random.standard_normal((64, 256, n // (64 * 256)), dtype=cp.float32).astype(dtype)
        b = cp.zeros(256, dtype)
        t = _timer(cp, lambda: pf.ops.bias_act(x, b, act="lrelu", impl="cuda"))
        alt = None
        if torch is not None:
            tx = torch.as_tensor(x, device="cuda")
            tb = torch.as_tensor(b, device="cuda")
            alt = _torch_time(torch, lambda: torch.nn.functional.leaky_relu(tx + tb[None, :, None], 0.2) * 2 ** 0.5)
        rows.append(dict(op="bias_act lrelu", shape=str(tuple(x.shape)), dtype=dtype, impl="cuda", seconds=t,
                         rate=2 * x.nbytes / t / 1e9, unit="GB/s", torch_seconds=alt))


def bench_conv2d(cp, torch, rows):
    shapes = [("A", 64, 64, 64, 32, 3, 1, 1), ("C", 32, 128, 128, 16, 3, 1, 1), ("D", 128, 64, 128, 8, 4, 2, 1)]
    for dtype in ("float32", "float16", "bfloat16"):
        dt = _cp_dtype(cp, dtype)
        if dt is None:
            rows.append(dict(op="conv2d", dtype=dtype, note="ml_dtypes missing: bfloat16 CuPy arrays unavailable"))
            continue
        for name, n, c, k, hw, r, s, p in shapes:
            x = cp.random.standard_normal((n, c, hw, hw), dtype=cp.float32).astype(dt)
            w = (cp.random.standard_normal((k, c, r, r), dtype=cp.float32) * 0.05).astype(dt)
            out_hw = (hw + 2 * p - r) // s + 1
            flops = 2 * n * k * c * r * r * out_hw * out_hw
            t = _timer(cp, lambda: pf.ops.conv2d(x, w, stride=s, padding=p, impl="cuda"))
            alt = None
            if torch is not None:
                tx, tw = torch.as_tensor(x, device="cuda"), torch.as_tensor(w, device="cuda")
                alt = _torch_time(torch, lambda: torch.nn.functional.conv2d(tx, tw, stride=s, padding=p))
            rows.append(dict(op=f"conv2d {name}", shape=f"N{n} {c}->{k} {hw}x{hw} k{r}s{s}", dtype=dtype,
                             impl="cuda", seconds=t, rate=flops / t / 1e12, unit="TFLOP/s", torch_seconds=alt))


def bench_attention(cp, torch, rows):
    for dtype in ("float32", "float16", "bfloat16"):
        dt = _cp_dtype(cp, dtype)
        if dt is None:
            rows.append(dict(op="attention", dtype=dtype, note="ml_dtypes missing: bfloat16 CuPy arrays unavailable"))
            continue
        for b, h, seq, d, causal in [(8, 8, 1024, 64, False), (8, 8, 1024, 64, True), (2, 16, 4096, 128, True)]:
            q, k, v = (cp.random.standard_normal((b, h, seq, d), dtype=cp.float32).astype(dt) for _ in range(3))
            flops = 4 * b * h * seq * seq * d / (2 if causal else 1)
            t = _timer(cp, lambda: pf.ops.attention(q, k, v, causal=causal, impl="cuda"))
            alt = None
            if torch is not None:
                tq, tk, tv = (torch.as_tensor(a, device="cuda") for a in (q, k, v))
                alt = _torch_time(torch, lambda: torch.nn.functional.scaled_dot_product_attention(
                    tq, tk, tv, is_causal=causal))
            rows.append(dict(op=f"attention{' causal' if causal else ''}", shape=f"B{b} H{h} L{seq} D{d}",
                             dtype=dtype, impl="cuda", seconds=t, rate=flops / t / 1e12, unit="TFLOP/s",
                             torch_seconds=alt))


def bench_sampling(cp, torch, rows):
    n = 1 << 24
    shape = (n // 4096, 4096)
    for impl in pf.available("reparameterize", "cuda") if hasattr(pf.ops, "reparameterize") else []:
        if impl == "ref":
            continue
        t = _timer(cp, lambda: pf.random.randn(shape, seed=1, device="cuda"))
        rows.append(dict(op="randn", shape=str(shape), dtype="float32", impl=impl, seconds=t, rate=4 * n / t / 1e9,
                         unit="GB/s", torch_seconds=None))
        mu = cp.zeros(shape, cp.float32)
        lv = cp.zeros(shape, cp.float32)
        t = _timer(cp, lambda: pf.ops.reparameterize(mu, lv, seed=1))
        rows.append(dict(op="reparameterize", shape=str(shape), dtype="float32", impl=impl, seconds=t,
                         rate=16 * n / t / 1e9, unit="GB/s", torch_seconds=None))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    cp = pf._backend.cupy()
    if cp is None:
        print("CuPy with a GPU is required")
        return 2
    torch = _torch()
    rows, failed = [], False
    for bench in (bench_bias_act, bench_conv2d, bench_attention, bench_sampling):
        try:
            bench(cp, torch, rows)
        except (AttributeError, ValueError, ImportError) as e:
            rows.append(dict(op=bench.__name__[6:], note=f"not available: {e}"))
        except Exception as e:  # noqa: BLE001 - a crash in a kernel is a failure
            rows.append(dict(op=bench.__name__[6:], note=f"FAILED: {type(e).__name__}: {e}"))
            failed = True
    dev = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(f"\npixelforge {pf.__version__} on {dev}")
    print(f"{'op':<22} {'shape':<26} {'dtype':<9} {'time':>10} {'rate':>14} {'vs torch':>9}")
    for r in rows:
        if "note" in r:
            print(f"{r['op']:<22} {r['note']}")
            continue
        ratio = f"{r['torch_seconds'] / r['seconds']:8.2f}x" if r.get("torch_seconds") else "     n/a"
        print(f"{r['op']:<22} {r['shape']:<26} {r['dtype']:<9} {r['seconds'] * 1e3:8.3f}ms "
              f"{r['rate']:8.2f} {r['unit']:<7} {ratio}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=dev, rows=rows), f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
