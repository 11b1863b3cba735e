"""GPU benchmarks for bench/gpu/run.sh: every op that exists, every dtype the op takes on the
GPU, timed with CUDA events (median of repeats after warm-up), against torch (cuDNN / cuBLAS /
SDPA) where torch with CUDA is installed; then the four model families' training steps/s.

    python bench/gpu/bench_gpu.py [--json FILE] [--only OP[,OP...]] [--quick] [--budget-s S]

OPs: bias_act, conv2d, attention, matmul, sampling, families (default: all, in that order).
--quick: one shape per op and fewer repeats. --budget-s: cases that would start after this
many seconds are recorded as skipped (so a caller's timeout does not cut the run mid-table).

Every (op, dtype, shape) case runs on its own: a case that raises is recorded as a FAILED row
(with the error) and the rest still run. "Not available" (op not built, ml_dtypes missing,
this CuPy without bfloat16, models without device="cuda") is a note, not a failure. After every
row the table line is printed (flushed) and the --json file is rewritten atomically, so a run
cut off by a timeout still leaves everything measured so far.

Columns: time (median seconds per call), rate (TFLOP/s, GB/s, steps/s, images/s), and
"vs torch" = torch's time / pixelforge's time (above 1: pixelforge is faster; '–' where torch
is not there). torch's inputs are built from the same float32 source arrays as pixelforge's,
rounded to float16/bfloat16 on the device (round to nearest even on both sides: the same values).

Exit status: 0 all cases ran, 1 some case FAILED, 2 no GPU visible (CuPy with a GPU is required).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback

import numpy as np

import pixelforge as pf
from pixelforge.benchmarks import Timer
from pixelforge.io import atomic_write

OPS = ("bias_act", "conv2d", "attention", "matmul", "sampling", "families")
FAMILIES = ("gan", "vae", "transformer", "diffusion")
NO_GPU = "no GPU visible (CuPy with a GPU is required)"


# ----------------------------------------------------------------------------- results
def _clean(value):
    """JSON-safe: non-finite floats become null, NumPy scalars plain Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path, payload):
    """``payload`` as JSON at ``path``; a reader (or a run killed mid-write) never sees a
    half-written file (pf.io.atomic_write)."""
    atomic_write(path, (json.dumps(_clean(payload), indent=1) + "\n").encode())


HEADER = f"{'op':<24} {'shape':<28} {'dtype':<9} {'time':>11} {'rate':>10} {'unit':<9} {'vs torch':>8}  notes"


def format_row(r) -> str:
    """One table line for a result row (ok, FAILED or note)."""
    op, shape, dtype = str(r.get("op", "?")), str(r.get("shape", "")), str(r.get("dtype", ""))
    status = r.get("status", "ok")
    if status == "FAILED":
        return f"{op:<24} {shape:<28} {dtype:<9} FAILED: {r.get('error', '')}"
    if status != "ok":
        return f"{op:<24} {shape:<28} {dtype:<9} {r.get('note', '')}"
    secs = r.get("seconds")
    t = f"{secs * 1e3:9.3f}ms" if secs is not None and secs < 10 else (f"{secs:10.2f}s" if secs is not None else "")
    rate = r.get("rate")
    rate_s = f"{'':>10}" if rate is None else (f"{rate:10.2f}" if abs(rate) >= 1 else f"{rate:10.4f}")
    ts = r.get("torch_seconds")
    ratio = f"{ts / secs:7.2f}x" if ts and secs else f"{'–':>8}"
    extra = "; ".join(x for x in (r.get("extra"), r.get("torch_note")) if x)
    return f"{op:<24} {shape:<28} {dtype:<9} {t:>11} {rate_s} {r.get('unit', ''):<9} {ratio}  {extra}".rstrip()


class Recorder:
    """Collects rows; prints each one (flushed) and rewrites the JSON file after every row."""

    def __init__(self, json_path=None, meta=None, budget_s=None, out=None):
        self.json_path = json_path
        self.meta = dict(meta or {})
        self.rows: list = []
        self.t0 = time.monotonic()
        self.budget_s = budget_s
        self.out = out or sys.stdout

    # status
    @property
    def failed(self) -> bool:
        return any(r.get("status") == "FAILED" for r in self.rows)

    def out_of_budget(self) -> bool:
        return self.budget_s is not None and time.monotonic() - self.t0 > self.budget_s

    # output
    def print(self, line=""):
        print(line, file=self.out, flush=True)

    def save(self, complete=False):
        if not self.json_path:
            return
        counts = {s: sum(1 for r in self.rows if r.get("status") == s) for s in ("ok", "FAILED", "note")}
        write_json_atomic(self.json_path, dict(self.meta, rows=self.rows, complete=complete, counts=counts,
                                               elapsed_s=round(time.monotonic() - self.t0, 3)))

    def add(self, **row):
        row.setdefault("status", "ok")
        self.rows.append(_clean(row))
        self.print(format_row(self.rows[-1]))
        self.save()
        return self.rows[-1]

    # the three kinds of rows
    def ok(self, op, shape, dtype, seconds, rate, unit, torch_seconds=None, impl="cuda", **extra):
        return self.add(op=op, shape=shape, dtype=dtype, impl=impl, seconds=seconds, rate=rate, unit=unit,
                        torch_seconds=torch_seconds, **extra)

    def note(self, op, note, shape="", dtype=""):
        return self.add(op=op, shape=shape, dtype=dtype, status="note", note=note)

    def fail(self, op, exc, shape="", dtype=""):
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return self.add(op=op, shape=shape, dtype=dtype, status="FAILED",
                        error=f"{type(exc).__name__}: {exc}"[:500], traceback=tb[-3000:])

    def case(self, op, shape, dtype, fn):
        """Run one case ``fn()`` (which records its own ok row) in isolation: out of budget ->
        a skipped note; ImportError (a backend not built) -> a note; anything else -> FAILED."""
        if self.out_of_budget():
            return self.note(op, f"skipped: out of budget ({self.budget_s:g} s)", shape, dtype)
        try:
            fn()
        except ImportError as e:   # pixelforge's NotBuilt is an ImportError
            self.note(op, f"not available: {type(e).__name__}: {e}", shape, dtype)
        except Exception as e:  # noqa: BLE001 - a crash in a kernel is a failure of this case only
            self.fail(op, e, shape, dtype)


# ----------------------------------------------------------------------------- timing
class Settings:
    def __init__(self, quick=False):
        self.quick = quick
        self.repeat = 5 if quick else 20
        self.warmup = 1 if quick else 3
        self.max_case_s = 0.5 if quick else 1.5   # measured repeats per case, roughly


def _n_repeats(est, s):
    return int(max(3, min(s.repeat, s.max_case_s / max(est, 1e-6))))


def _timer(cp, fn, s):
    """Median seconds per call of ``fn`` on CuPy's current stream (CUDA events)."""
    for _ in range(s.warmup):
        fn()
    cp.cuda.Device().synchronize()

    def once():
        return Timer.once(fn, "cuda")  # the harness's CUDA-event timing

    first = once()
    times = [first] + [once() for _ in range(_n_repeats(first, s) - 1)]
    return float(np.median(times))


def _torch_time(torch, fn, s):
    for _ in range(s.warmup):
        fn()
    torch.cuda.synchronize()

    def once():
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        return e0.elapsed_time(e1) / 1e3

    first = once()
    times = [first] + [once() for _ in range(_n_repeats(first, s) - 1)]
    return float(np.median(times))


def _torch():
    try:
        import torch  # noqa: PLC0415
        return torch if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        return None


def _torch_compare(torch, s, make):
    """(torch_seconds, torch_note): ``make()`` returns the torch callable to time. A failure on
    torch's side is a note on the row, not a failure of pixelforge."""
    if torch is None:
        return None, None
    try:
        return _torch_time(torch, make(), s), None
    except Exception as e:  # noqa: BLE001
        return None, f"torch failed: {type(e).__name__}: {e}"[:200]


# ----------------------------------------------------------------------------- dtypes
def _dtype(cp, name):
    """(CuPy dtype, None) or (None, why not available)."""
    if name != "bfloat16":
        return np.dtype(name), None
    try:
        import ml_dtypes  # noqa: PLC0415
    except ImportError:
        return None, "not available: ml_dtypes missing (bfloat16 CuPy arrays need it)"
    dt = np.dtype(ml_dtypes.bfloat16)
    try:
        _cast(cp, cp.ones(4, cp.float32), dt)
    except Exception as e:  # noqa: BLE001 - this CuPy cannot hold bfloat16 arrays
        return None, f"not available: this CuPy has no bfloat16 arrays ({type(e).__name__}: {e})"[:300]
    return dt, None


def _cast(cp, x32, dt):
    """float32 CuPy array -> ``dt`` (round to nearest even), on the device where CuPy can,
    else through the host (ml_dtypes' cast, the same rounding)."""
    if x32.dtype == dt:
        return x32
    try:
        return x32.astype(dt)
    except Exception:  # noqa: BLE001 - CuPy without a device cast to this dtype
        return cp.asarray(cp.asnumpy(x32).astype(dt))


def _torch_from32(torch, x32, name):
    """torch tensor on the GPU from the float32 CuPy source, cast on the device."""
    t = torch.as_tensor(x32, device="cuda")
    return t if name == "float32" else t.to(getattr(torch, name))


def _randn32(cp, shape, scale=1.0):
    x = cp.random.standard_normal(shape, dtype=cp.float32)
    return x * cp.float32(scale) if scale != 1.0 else x


def _op_available(rec, op, pf_op=None):
    """True when ``op`` has a "cuda" implementation here, else records a note and returns False."""
    try:
        impls = pf.available(pf_op or op, "cuda")
    except Exception as e:  # noqa: BLE001
        rec.note(op, f"not available: {type(e).__name__}: {e}")
        return False
    if "cuda" not in impls:
        rec.note(op, f"not available: no 'cuda' implementation built (have: {impls or 'none'})")
        return False
    return True


# ----------------------------------------------------------------------------- ops
BIAS_ACT_N = 1 << 26      # elements
SAMPLING_N = 1 << 24


def bench_bias_act(cp, torch, rec, s):
    if not _op_available(rec, "bias_act"):
        return
    n = BIAS_ACT_N >> (2 if s.quick else 0)
    shape = (64, 256, n // (64 * 256))
    for name in ("float32", "float16", "bfloat16"):
        dt, why = _dtype(cp, name)
        if dt is None:
            rec.note("bias_act lrelu", why, str(shape), name)
            continue

        def case(name=name, dt=dt):
            x32 = _randn32(cp, shape)
            b32 = _randn32(cp, (256,), 0.1)
            x, b = _cast(cp, x32, dt), _cast(cp, b32, dt)
            t = _timer(cp, lambda: pf.ops.bias_act(x, b, act="lrelu", impl="cuda"), s)

            def make():
                tx, tb = _torch_from32(torch, x32, name), _torch_from32(torch, b32, name)
                f = torch.nn.functional.leaky_relu
                return lambda: f(tx + tb[None, :, None], 0.2) * 2 ** 0.5
            ts, tnote = _torch_compare(torch, s, make)
            rec.ok("bias_act lrelu", str(shape), name, t, 2 * x.nbytes / t / 1e9, "GB/s", ts, torch_note=tnote)
        rec.case("bias_act lrelu", str(shape), name, case)


CONV_SHAPES = [("A", 64, 64, 64, 32, 3, 1, 1), ("C", 32, 128, 128, 16, 3, 1, 1), ("D", 128, 64, 128, 8, 4, 2, 1)]


def bench_conv2d(cp, torch, rec, s):
    if not _op_available(rec, "conv2d"):
        return
    shapes = CONV_SHAPES[:1] if s.quick else CONV_SHAPES
    for name in ("float32", "float16", "bfloat16"):
        dt, why = _dtype(cp, name)
        if dt is None:
            rec.note("conv2d", why, "", name)
            continue
        for label, n, c, k, hw, r, st, p in shapes:
            desc = f"N{n} {c}->{k} {hw}x{hw} k{r}s{st}"

            def case(name=name, dt=dt, n=n, c=c, k=k, hw=hw, r=r, st=st, p=p, label=label, desc=desc):
                x32 = _randn32(cp, (n, c, hw, hw))
                w32 = _randn32(cp, (k, c, r, r), 0.05)
                x, w = _cast(cp, x32, dt), _cast(cp, w32, dt)
                out_hw = (hw + 2 * p - r) // st + 1
                flops = 2 * n * k * c * r * r * out_hw * out_hw
                t = _timer(cp, lambda: pf.ops.conv2d(x, w, stride=st, padding=p, impl="cuda"), s)

                def make():
                    tx, tw = _torch_from32(torch, x32, name), _torch_from32(torch, w32, name)
                    return lambda: torch.nn.functional.conv2d(tx, tw, stride=st, padding=p)
                ts, tnote = _torch_compare(torch, s, make)
                rec.ok(f"conv2d {label}", desc, name, t, flops / t / 1e12, "TFLOP/s", ts, torch_note=tnote)
            rec.case(f"conv2d {label}", desc, name, case)


ATTN_SHAPES = [(8, 8, 1024, 64, False), (8, 8, 1024, 64, True), (2, 16, 4096, 128, True)]


def bench_attention(cp, torch, rec, s):
    if not _op_available(rec, "attention"):
        return
    shapes = ATTN_SHAPES[:1] if s.quick else ATTN_SHAPES
    for name in ("float32", "float16", "bfloat16"):
        dt, why = _dtype(cp, name)
        if dt is None:
            rec.note("attention", why, "", name)
            continue
        for b, h, seq, d, causal in shapes:
            op = f"attention{' causal' if causal else ''}"
            desc = f"B{b} H{h} L{seq} D{d}"

            def case(name=name, dt=dt, b=b, h=h, seq=seq, d=d, causal=causal, op=op, desc=desc):
                src = [_randn32(cp, (b, h, seq, d)) for _ in range(3)]
                q, k, v = (_cast(cp, a, dt) for a in src)
                flops = 4 * b * h * seq * seq * d / (2 if causal else 1)
                t = _timer(cp, lambda: pf.ops.attention(q, k, v, causal=causal, impl="cuda"), s)

                def make():
                    tq, tk, tv = (_torch_from32(torch, a, name) for a in src)
                    sdpa = torch.nn.functional.scaled_dot_product_attention
                    return lambda: sdpa(tq, tk, tv, is_causal=causal)
                ts, tnote = _torch_compare(torch, s, make)
                rec.ok(op, desc, name, t, flops / t / 1e12, "TFLOP/s", ts, torch_note=tnote)
            rec.case(op, desc, name, case)


MATMUL_SHAPES = [(1, 4096, 4096, 4096), (16, 1024, 1024, 64)]   # (batch, M, N, K)


def bench_matmul(cp, torch, rec, s):
    if not _op_available(rec, "matmul"):
        return
    shapes = MATMUL_SHAPES[:1] if s.quick else MATMUL_SHAPES
    for name in ("float32", "float16", "bfloat16"):
        dt, why = _dtype(cp, name)
        if dt is None:
            rec.note("matmul", why, "", name)
            continue
        for batch, m, n, k in shapes:
            desc = f"{m}x{n}x{k}" + (f" batch {batch}" if batch > 1 else "")

            def case(name=name, dt=dt, batch=batch, m=m, n=n, k=k, desc=desc):
                lead = (batch,) if batch > 1 else ()
                a32 = _randn32(cp, lead + (m, k))
                b32 = _randn32(cp, lead + (k, n), 1.0 / math.sqrt(k))
                a, b = _cast(cp, a32, dt), _cast(cp, b32, dt)
                flops = 2 * m * n * k * batch
                t = _timer(cp, lambda: pf.ops.matmul(a, b, impl="cuda"), s)

                def make():
                    ta, tb = _torch_from32(torch, a32, name), _torch_from32(torch, b32, name)
                    return lambda: torch.matmul(ta, tb)
                ts, tnote = _torch_compare(torch, s, make)
                if torch is not None and name == "float32" and ts is not None:
                    tf32 = torch.backends.cuda.matmul.allow_tf32
                    tnote = f"cuBLAS {'TF32' if tf32 else 'FP32'}"
                rec.ok("matmul", desc, name, t, flops / t / 1e12, "TFLOP/s", ts, torch_note=tnote)
            rec.case("matmul", desc, name, case)


def bench_sampling(cp, torch, rec, s):
    pfrandom = pf.random   # registers randn's implementations
    n = SAMPLING_N >> (2 if s.quick else 0)
    shape = (n // 4096, 4096)
    for op, key in (("randn", "randn"), ("reparameterize", "reparameterize")):
        try:
            impls = [i for i in pf.available(key, "cuda") if i != "ref"]
        except Exception as e:  # noqa: BLE001
            rec.note(op, f"not available: {type(e).__name__}: {e}")
            continue
        if not impls:
            rec.note(op, "not available: no GPU implementation built", str(shape), "float32")
            continue
        for impl in impls:
            if op == "randn":
                def case(impl=impl):
                    t = _timer(cp, lambda: pfrandom.randn(shape, seed=1, device="cuda", impl=impl), s)
                    rec.ok("randn", str(shape), "float32", t, 4 * n / t / 1e9, "GB/s", impl=impl, extra=impl)
            else:
                def case(impl=impl):
                    mu = cp.zeros(shape, cp.float32)
                    lv = cp.zeros(shape, cp.float32)
                    t = _timer(cp, lambda: pf.ops.reparameterize(mu, lv, seed=1, impl=impl), s)
                    # reads mu and logvar, writes z and eps
                    rec.ok("reparameterize", str(shape), "float32", t, 16 * n / t / 1e9, "GB/s", impl=impl,
                           extra=impl)
            rec.case(op, str(shape), "float32", case)


def _digits():
    """(images, where from): the UCI digits, or same-shaped uniform noise where scikit-learn
    is missing (steps/s does not depend on the pixel values)."""
    try:
        images, _ = pf.data.load_digits()
        return images, "digits"
    except ImportError:
        rng = np.random.default_rng(0)
        return rng.random((1797, 1, 8, 8), dtype=np.float32), "synthetic (scikit-learn missing)"


def bench_families(cp, torch, rec, s):
    images, source = _digits()
    steps = 10 if s.quick else 20
    for fam in FAMILIES:
        op = f"train {fam}"
        if rec.out_of_budget():
            rec.note(op, f"skipped: out of budget ({rec.budget_s:g} s)", "(1,8,8)", "float32")
            continue
        try:
            m = pf.models.create(fam, image_shape=(1, 8, 8), device="cuda")
        except (TypeError, ValueError) as e:
            rec.note(op, f"not available: create(device='cuda'): {type(e).__name__}: {e}"[:300], "(1,8,8)",
                     "float32")
            continue
        except Exception as e:  # noqa: BLE001
            rec.fail(op, e, "(1,8,8)", "float32")
            continue
        state = {}

        def train(m=m, fam=fam, op=op):
            t0 = time.perf_counter()
            m.fit(images, steps=3, progress=False)          # warm-up: JIT compiles, allocations
            cp.cuda.Device().synchronize()
            warm = time.perf_counter() - t0
            t0 = time.perf_counter()
            hist = m.fit(images, steps=steps, progress=False)
            cp.cuda.Device().synchronize()
            secs = time.perf_counter() - t0
            done = int(hist.get("steps", steps)) or steps
            bs = getattr(m, "DEFAULT_BATCH", None)
            ips = hist.get("images_per_second")
            state["trained"] = True
            rec.ok(op, f"(1,8,8) batch {bs} x{done}", "float32", secs / done, done / secs, "steps/s",
                   images_per_second=ips, steps=done, warmup_seconds=warm, data=source,
                   extra=f"{ips:.0f} img/s (fit's own); warm-up {warm:.1f}s" if ips else f"warm-up {warm:.1f}s")

        rec.case(op, "(1,8,8)", "float32", train)
        if not state.get("trained"):
            continue

        def sample(m=m, fam=fam):
            t0 = time.perf_counter()
            m.sample(64, seed=0)
            cp.cuda.Device().synchronize()
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = m.sample(64, seed=0)
            cp.cuda.Device().synchronize()
            secs = time.perf_counter() - t0
            rec.ok(f"sample {fam}", f"64 x {tuple(np.shape(out)[1:])}", "float32", secs, 64 / secs, "images/s",
                   first_call_seconds=first, extra=f"first call {first:.2f}s")
        rec.case(f"sample {fam}", "64", "float32", sample)


BENCHES = {"bias_act": bench_bias_act, "conv2d": bench_conv2d, "attention": bench_attention,
           "matmul": bench_matmul, "sampling": bench_sampling, "families": bench_families}


# ----------------------------------------------------------------------------- main
def _parse_only(text):
    ops = [o.strip() for o in text.split(",") if o.strip()]
    bad = [o for o in ops if o not in OPS]
    if bad or not ops:
        raise argparse.ArgumentTypeError(f"unknown op(s) {bad or text!r}; expected a comma-separated subset of "
                                         f"{','.join(OPS)}")
    return [o for o in OPS if o in ops]   # keep the canonical order


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the rows here (rewritten atomically after every row)")
    ap.add_argument("--only", type=_parse_only, default=list(OPS), metavar="OP[,OP]",
                    help=f"run only these ({','.join(OPS)})")
    ap.add_argument("--quick", action="store_true", help="one shape per op, fewer repeats")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="record cases that would start after this many seconds as skipped")
    return ap.parse_args(argv)


def _device_name(cp):
    name = cp.cuda.runtime.getDeviceProperties(0)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def main(argv=None):
    args = parse_args(argv)
    cp = pf._backend.cupy()
    if cp is None:
        print(NO_GPU, flush=True)
        if args.json:
            write_json_atomic(args.json, dict(device=None, error=NO_GPU, rows=[], complete=True))
        return 2
    torch = _torch()
    dev = _device_name(cp)
    meta = dict(device=dev, pixelforge=pf.__version__, cupy=cp.__version__,
                torch=getattr(torch, "__version__", None), ops=args.only, quick=args.quick,
                started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    rec = Recorder(args.json, meta, args.budget_s)
    s = Settings(args.quick)
    rec.print(f"pixelforge {pf.__version__} on {dev} (CuPy {cp.__version__}; torch "
              f"{meta['torch'] + ' with CUDA' if torch else 'not available: no ratios'}){' [quick]' if args.quick else ''}")
    rec.print(HEADER)
    rec.save()
    for op in args.only:
        try:
            BENCHES[op](cp, torch, rec, s)
        except Exception as e:  # noqa: BLE001 - a failure outside any single case
            rec.fail(op, e)
        try:
            cp.get_default_memory_pool().free_all_blocks()
            if torch is not None:
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001
            pass
    rec.save(complete=True)
    counts = {st: sum(1 for r in rec.rows if r.get("status") == st) for st in ("ok", "FAILED", "note")}
    rec.print(f"{len(rec.rows)} rows on {dev}: {counts['ok']} measured, {counts['FAILED']} FAILED, "
              f"{counts['note']} notes ({time.monotonic() - rec.t0:.1f}s)")
    for r in rec.rows:
        if r.get("status") == "FAILED":
            rec.print(f"  FAILED {r['op']} {r.get('shape', '')} {r.get('dtype', '')}: {r['error']}")
    return 1 if rec.failed else 0


if __name__ == "__main__":
    sys.exit(main())
