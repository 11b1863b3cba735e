"""``pixelforge bench``: how fast each kernel runs on this machine.

    pixelforge bench [--op conv2d|attention|sampling|matmul|train_step|bias_act|all]
                     [--impl cpu,cuda,numba,ref] [--quick] [--rounds N] [--json FILE] [--plot FILE]

For every op this runs its benchmark shapes (the one table below, which the pytest-benchmark
suites in bench/ import too) on every built pixelforge impl and on the installed alternatives
(NumPy; torch where installed), and prints one table: time (median of interleaved rounds, so
load from other processes hits every contender alike), GFLOP/s or GB/s, percent of this
machine's own ceiling, and the ratio to the best alternative (> 1: pixelforge is faster).

The ceilings are measured at start: a float32 matmul through NumPy's BLAS (compute-bound
rows are compared with it) and ``np.copyto`` of 512 MiB (memory-bound rows: a copy reads and
writes every byte, the most a streaming kernel can move). ``--quick`` shrinks shapes, the
ceiling sizes and the rounds so the whole run takes seconds.

Ops that are not in this installation (say sampling before its branch lands) print
"not available" and are skipped. GPU rows (CuPy arrays) are timed with CUDA events around the
call, so they measure device time, not launch time. ``--json`` writes every row and the
machine description; ``--plot`` draws a bar chart (needs matplotlib: ``pip install
pixelforge[plot]``).

Python use: ``from pixelforge.benchmarks import SHAPES, main``. The package holds the one
harness the bench/ scripts share: shapes.py (the shapes and FLOP counts), timing.py (one
interleaved timer, the torch/CuPy references, the ceilings), cases.py (the problems per op),
report.py (table and plot).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

import pixelforge as pf

from .cases import _BUILDERS
from .report import format_table, plot
from .shapes import CONV_PASSES, OPS, QUICK_SHAPES, SHAPES, attention_flops, conv2d_flops, shapes  # noqa: F401
from .timing import Timer, cupy_gpu, interleaved, measure_ceilings, torch_or_none  # noqa: F401


# ----------------------------------------------------------------------------- running
def _progress(total, enabled):
    if not enabled:
        return None
    try:
        from tqdm import tqdm  # noqa: PLC0415
    except ImportError:
        return _PlainProgress(total)
    return tqdm(total=total, desc="pixelforge bench", unit="shape", file=sys.stderr, leave=False)


class _PlainProgress:
    """The fallback when tqdm is not installed: a counter on stderr."""

    def __init__(self, total):
        self.total, self.n = total, 0

    def set_postfix_str(self, s):
        self.label = s

    def update(self, k=1):
        self.n += k
        print(f"\r[{self.n}/{self.total}] {getattr(self, 'label', '')[:60]:<60}", end="", file=sys.stderr, flush=True)

    def close(self):
        print(file=sys.stderr)


def run(ops=OPS, impls=None, quick=False, rounds=None, progress=True, log=print):
    """Run the benchmarks; returns the result dict that ``--json`` writes."""
    sh = shapes(quick)
    torch = torch_or_none()
    if torch is not None:
        # as many threads as pixelforge's OpenMP runtime uses: a like-for-like comparison
        torch.set_num_threads(max(1, int(pf.info()["cpu"]["threads"] or 1)))
    gpu = cupy_gpu() is not None
    ceilings = measure_ceilings(quick)
    info = pf.info()
    result = {
        "pixelforge": info.get("version"), "quick": bool(quick),
        "machine": {"cpu": info.get("cpu"), "cuda": info.get("cuda"), "numpy": np.__version__,
                    "torch": getattr(torch, "__version__", None), "load_average": os.getloadavg()[0]},
        "ceilings": ceilings, "ceilings_start": dict(ceilings), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "rows": [], "skipped": [],
    }
    log(f"pixelforge {info.get('version')} bench ({'quick' if quick else 'full'}): CPU {info['cpu'].get('isa')}, "
        f"{info['cpu'].get('threads')} threads; torch {result['machine']['torch'] or 'not installed'}; "
        f"GPU {'yes (CUDA events)' if gpu else 'no'}")
    log(f"ceilings: float32 matmul (NumPy, {ceilings['matmul_n']}^3) {ceilings['matmul_gflops']:.1f} GFLOP/s; "
        f"np.copyto {ceilings['copy_mib']} MiB {ceilings['copy_gbs']:.1f} GB/s (read + write)")
    groups = [g for op in ops for g in _BUILDERS[op](sh, impls, gpu)]
    timer = Timer(rounds or (3 if quick else 7), budget_s=0.3 if quick else 8.0)
    bar = _progress(len(groups), progress)
    noted = set()
    for op, device, build in groups:
        built = build()
        label, amount, unit, cases = built[:4]
        present = built[4] if len(built) > 4 else True
        if bar is not None:
            bar.set_postfix_str(label[:40])
        if not present:
            name = label.split()[0] if op == "sampling" else op
            if name not in noted:
                noted.add(name)
                result["skipped"].append({"op": op, "shape": label, "reason": "not available"})
                # tqdm.write keeps the bar intact; plain print otherwise
                _note(bar, f"{name}: not available in this installation (skipped; alternatives still timed)")
        timer.run(cases)
        ceiling = ceilings["matmul_gflops"] if unit == "GFLOP/s" else ceilings["copy_gbs"]
        alts = [c for c in cases if c["kind"] == "alternative" and "seconds" in c]
        best = min(alts, key=lambda c: c["seconds"]) if alts else None
        for c in cases:
            row = {"op": op, "shape": label, "impl": c["impl"], "kind": c["kind"],
                   "device": "cuda" if c["device"] in ("cuda", "torch-cuda") else "cpu",
                   "status": c.get("status", "ok"), "amount": amount, "unit": unit}
            if "seconds" in c:
                rate = amount / c["seconds"] / 1e9
                row.update(seconds=c["seconds"], rounds=c["rounds"], rate=rate,
                           # GPU rates against CPU ceilings would mislead
                           pct_ceiling=100 * rate / ceiling if row["device"] == "cpu" else None,
                           ratio=(best["seconds"] / c["seconds"]) if best else None,
                           best_alternative=best["impl"] if best else None)
            result["rows"].append(row)
        del built, cases
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    # measured again at the end: load from other processes that held the start down shows up
    # as a difference; percentages use the higher of the two
    end = measure_ceilings(quick)
    result["ceilings_end"] = end
    for key in ("matmul_gflops", "copy_gbs"):
        if end[key] > ceilings[key]:
            ceilings[key] = end[key]
            unit = "GFLOP/s" if key == "matmul_gflops" else "GB/s"
            for row in result["rows"]:
                if row.get("pct_ceiling") is not None and row["unit"] == unit:
                    row["pct_ceiling"] = 100 * row["rate"] / end[key]
    log(f"ceilings at the end: matmul {end['matmul_gflops']:.1f} GFLOP/s, copy {end['copy_gbs']:.1f} GB/s "
        f"(% of ceiling uses the higher of start and end)")
    return result


def _note(bar, msg):
    if bar is not None and hasattr(bar, "write"):
        bar.write(msg, file=sys.stderr)
    else:
        print(msg, file=sys.stderr)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="pixelforge bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--op", default="all", help=f"comma-separated ops from {', '.join(OPS)}, or all")
    p.add_argument("--impl", default=None,
                   help="comma-separated pixelforge impls (cpu,cuda,numba,ref); default: every built one but ref")
    p.add_argument("--quick", action="store_true", help="small shapes and ceilings, 3 rounds: seconds, not minutes")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds per contender (default 7, quick 3)")
    p.add_argument("--json", metavar="FILE", default=None, help="write every row and the machine description")
    p.add_argument("--plot", metavar="FILE", default=None, help="bar chart PNG (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Entry point of ``pixelforge bench``; returns the exit status."""
    args = parse_args(argv)
    # Contenders from three thread pools (pixelforge's OpenMP, torch's OpenMP, OpenBLAS) run in
    # turn: with spinning idle workers the one that just finished steals the cores of the next.
    # Passive waiting makes the comparison fair; it only takes effect when no OpenMP runtime has
    # started yet in this process, and an explicit setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ops = OPS if args.op == "all" else tuple(o.strip() for o in args.op.split(",") if o.strip())
    bad = [o for o in ops if o not in OPS]
    if bad:
        print(f"pixelforge bench: --op: unknown op(s) {bad}; expected {', '.join(OPS)} or all", file=sys.stderr)
        return 2
    impls = None
    if args.impl:
        impls = [i.strip() for i in args.impl.split(",") if i.strip()]
        unknown = [i for i in impls if i not in ("cpu", "cuda", "numba", "ref")]
        if unknown:
            print(f"pixelforge bench: --impl: unknown impl(s) {unknown}; expected cpu, cuda, numba, ref",
                  file=sys.stderr)
            return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401,PLC0415
        except ImportError:
            print("pixelforge bench: --plot needs matplotlib (pip install 'pixelforge[plot]')", file=sys.stderr)
            return 2
    result = run(ops, impls, quick=args.quick, rounds=args.rounds, progress=not args.no_progress)
    print()
    print(format_table(result))
    print("\nrate: GFLOP/s for compute-bound ops, GB/s (bytes read + written) for memory-bound ones; % ceil: of "
          "the matching ceiling above; vs best alt: best alternative's time / this time (> 1: faster)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
        print(f"wrote {args.json}")
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
