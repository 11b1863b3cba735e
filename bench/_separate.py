"""``--separate`` for the bench/ scripts: every library timed in its own process.

The scripts' ordinary tables time pixelforge and torch in turn in one process (interleaved
medians), where two OpenMP runtimes, two allocators and two sets of packed buffers share the
address space and the caches. With ``--separate`` the script's process (the *parent*) imports
neither library: it starts the same script again as children, ``--side pixelforge``, ``--side
torch`` (and ``--side numpy`` where the script has a NumPy contender), one fresh process per
library, taking turns for ``--rounds`` rounds. Each child imports only its own library (checked
in ``sys.modules`` before it reports), builds the same inputs (same seeds, NumPy), times each of
its cases like the in-process tables do (one warm-up call, then N timed calls, the median) and
prints one JSON line. Per case, the parent takes the median over rounds of the children's medians.

A script uses it so::

    import _separate
    ROLE = _separate.role() if __name__ == "__main__" else None
    if ROLE in (None, "pixelforge"):
        import pixelforge as pf
    ...
    # the parent:   med, info = _separate.run(__file__, argv, sides, rounds)  -> med[side][case] seconds
    # each child:   _separate.report(side, {case: _separate.median_seconds(fn, calls)}, info)

Children get the parent's arguments (less ``--separate``) plus ``--side S``, ``--threads T``
(pixelforge's OpenMP thread count, asked of a throwaway process, for the scripts that give torch
as many threads) and ``--scratch DIR`` (a temporary folder the round's children share: a file the
pixelforge child writes, which runs first in every round, can carry data the others need).
The environment passes through unchanged (OMP_NUM_THREADS, OMP_WAIT_POLICY, ...).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SIDES = ("pixelforge", "numpy", "torch")
# the libraries a process of each role must not have imported
_FORBIDDEN = {"pixelforge": ("torch",), "torch": ("pixelforge",), "numpy": ("pixelforge", "torch"),
              "parent": ("pixelforge", "torch")}
HEADER = ("each library in its own process ({sides}: a fresh process each, taking turns, {rounds} round(s)); "
          "median over rounds of each process's median of {calls}")


# ----------------------------------------------------------------------------- arguments
def opt(argv, name, cast=str, default=None):
    """The value of ``name V`` or ``name=V`` in argv (cast), else default."""
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return cast(argv[i + 1])
        if a.startswith(name + "="):
            return cast(a[len(name) + 1:])
    return default


def role(argv=None):
    """'pixelforge' / 'numpy' / 'torch' in a ``--side`` child, 'parent' under ``--separate``, else
    None (the script's ordinary in-process run, or pytest)."""
    argv = sys.argv[1:] if argv is None else argv
    side = opt(argv, "--side")
    if side is not None:
        if side not in SIDES:
            raise SystemExit(f"--side: expected one of {', '.join(SIDES)}, got {side!r}")
        return side
    return "parent" if "--separate" in argv else None


def add_arguments(ap):
    """The hidden child arguments, for scripts that parse with argparse (``--separate`` and
    ``--rounds`` are the script's own, with its own help)."""
    import argparse  # noqa: PLC0415

    ap.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--scratch", help=argparse.SUPPRESS)


# ----------------------------------------------------------------------------- in the children
def imported(lib):
    return any(m == lib or m.startswith(lib + ".") for m in sys.modules)


def assert_alone(who):
    """Raise AssertionError when this process (a child of side ``who``, or the 'parent') has
    imported a library it must not have."""
    bad = [lib for lib in _FORBIDDEN[who] if imported(lib)]
    if bad:
        raise AssertionError(f"--separate: the {who} process imported {', '.join(bad)}")


def shape_table():
    """pixelforge/benchmarks/shapes.py, the one table of benchmark shapes and FLOP counts: the
    module itself where pixelforge is imported, else loaded from its file (it imports nothing)
    without importing pixelforge, for the parent and the torch and NumPy children."""
    if imported("pixelforge"):  # (the package's name `shapes` is the function, not this module)
        return importlib.import_module("pixelforge.benchmarks.shapes")
    spec = importlib.util.find_spec("pixelforge")  # finds the package; runs none of it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("pixelforge is not on sys.path (PYTHONPATH=python?)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "benchmarks", "shapes.py")
    mspec = importlib.util.spec_from_file_location("_pixelforge_benchmark_shapes", path)
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    return mod


def torch_or_none(threads=None):
    """torch with ``threads`` intra-op threads (None: its default), or None when not installed."""
    try:
        import torch  # noqa: PLC0415 - the optional reference
    except ImportError:
        return None
    if threads is not None:
        torch.set_num_threads(int(threads))
    return torch


def median_seconds(fn, calls, clock=time.perf_counter, target_s=None):
    """Median seconds per call of ``fn``: one warm-up call, then ``calls`` timed calls (the
    in-process tables' method, for one contender). ``target_s``: repeat the call within each
    timing until it lasts about that long (short kernels), as the interleaved helper does."""
    fn()  # warm-up: JIT compilation, lazy loads, thread pools, packing buffers, pages
    reps = 1
    if target_s:  # a second, warm call sizes the repetitions
        t0 = clock()
        fn()
        reps = max(1, int(target_s / max(clock() - t0, 1e-7)))
    times = []
    for _ in range(max(1, int(calls))):
        t0 = clock()
        for _ in range(reps):
            fn()
        times.append((clock() - t0) / reps)
    return float(np.median(times))


def report(side, times, info=None):
    """A child's last act: check its imports, print ``{"side", "times": {case: seconds}, "info"}``
    as one JSON line."""
    assert_alone(side)
    print(json.dumps({"side": side, "times": times, "info": info or {}}), flush=True)


# ----------------------------------------------------------------------------- in the parent
def pixelforge_threads(env=None):
    """pixelforge's OpenMP thread count (pf.info), asked of a throwaway process."""
    code = "import pixelforge as pf; print(int(pf.info()['cpu']['threads'] or 1))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"--separate: cannot import pixelforge:\n{r.stderr[-2000:]}")
    return int(r.stdout.strip().splitlines()[-1])


def run(script, argv, sides=("pixelforge", "torch"), rounds=5, log=sys.stderr):
    """Run ``script`` once per side and round (the sides in the order given, pixelforge first),
    each child with ``argv`` less ``--separate`` plus ``--side``, ``--threads`` and ``--scratch``.
    Returns (med, info): med[side][case] the median over rounds of that side's medians (seconds),
    info[side] the info dict of that side's first child."""
    assert_alone("parent")
    env = dict(os.environ)
    argv = [a for a in argv if a != "--separate"]
    threads = pixelforge_threads(env)
    times = {s: {} for s in sides}
    info = {}
    with tempfile.TemporaryDirectory(prefix="pf-separate-") as scratch:
        for r in range(rounds):
            for side in sides:
                cmd = [sys.executable, os.path.abspath(script), *argv, "--side", side, "--threads", str(threads),
                       "--scratch", scratch]
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode:
                    raise SystemExit(f"--separate: the {side} process failed (exit {proc.returncode}): "
                                     f"{' '.join(cmd)}\n{proc.stderr[-4000:]}")
                lines = proc.stdout.strip().splitlines()
                out = json.loads(lines[-1]) if lines else {}
                if out.get("side") != side:
                    raise SystemExit(f"--separate: no report from the {side} process:\n{proc.stdout[-2000:]}"
                                     f"\n{proc.stderr[-2000:]}")
                for case, s in out["times"].items():
                    times[side].setdefault(case, []).append(s)
                info.setdefault(side, out["info"])
                if log is not None:
                    print(f"# --separate round {r + 1}/{rounds}: {side} process {time.perf_counter() - t0:.1f} s",
                          file=log, flush=True)
    assert_alone("parent")
    med = {s: {c: float(np.median(v)) for c, v in d.items()} for s, d in times.items()}
    return med, info


def header(sides, rounds, calls):
    """The line that says how a --separate table was measured; calls: a count or a phrase."""
    calls = f"{calls} call(s)" if isinstance(calls, int) else calls
    return HEADER.format(sides=", ".join(sides), rounds=rounds, calls=calls)
