"""``pixelforge bench`` (pixelforge.benchmarks.main): the quick run completes, its JSON has a row
for every op x impl (pixelforge impls built here, NumPy, torch where installed) with times,
rates and ratios to the best alternative; bad arguments fail cleanly; the bench/ suites share
its shape table."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import pixelforge as pf
from pixelforge import benchmarks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench(args, extra_code="", timeout=300):
    code = f"{extra_code}\nimport sys\nfrom pixelforge.benchmarks import main\nsys.exit(main({args!r}))"
    # the child imports the same pixelforge as this process (an installed one has the compiled
    # modules; the source tree of a fresh clone has none)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(pf.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([pkg_parent, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    js, png = d / "out.json", d / "out.png"
    args = ["--quick", "--json", str(js), "--no-progress"]
    have_mpl = True
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        have_mpl = False
    if have_mpl:
        args += ["--plot", str(png)]
    proc = _bench(args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(js.read_text()), proc.stdout, png if have_mpl else None


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def test_json_has_every_op_and_impl(quick_run):
    result, _, _ = quick_run
    rows = result["rows"]
    sh = benchmarks.QUICK_SHAPES
    expected_groups = {
        # op: number of (shape, pass) problems on the CPU
        "conv2d": len(sh["conv2d"]) * len(benchmarks.CONV_PASSES),
        "attention": len(sh["attention"]["points"]) * 4,  # full/causal x forward/backward
        "sampling": 4,  # randn, reparameterize, add_noise, DDIM step
        "matmul": len(sh["matmul"]),
        "train_step": 1,
        "bias_act": 1,
    }
    for op, n in expected_groups.items():
        cpu_rows = [r for r in rows if r["op"] == op and r["device"] == "cpu"]
        shapes = {r["shape"] for r in cpu_rows}
        assert len(shapes) == n, (op, sorted(shapes))
        for shape in shapes:
            impls = {r["impl"] for r in cpu_rows if r["shape"] == shape}
            if _has_torch():
                assert "torch" in impls, (op, shape, impls)
            if op in ("conv2d", "attention", "bias_act"):
                for impl in pf.available(op if op != "conv2d" or "transpose" not in shape else "conv_transpose2d"):
                    if impl != "ref":  # the float64 reference runs only with --impl ref
                        assert impl in impls, (op, shape, impl, impls)
    # NumPy alternatives where the op has a NumPy formulation
    for op in ("bias_act", "matmul", "sampling"):
        assert any(r["impl"] == "numpy" for r in rows if r["op"] == op), op
    assert any(r["impl"] == "numpy" for r in rows if r["op"] == "conv2d" and "forward" in r["shape"])


def test_rows_have_times_rates_and_ratios(quick_run):
    result, _, _ = quick_run
    c = result["ceilings"]
    assert c["matmul_gflops"] > 0 and c["copy_gbs"] > 0
    timed = [r for r in result["rows"] if r["status"] == "ok"]
    assert len(timed) == len(result["rows"]), [r for r in result["rows"] if r["status"] != "ok"]
    for r in timed:
        assert r["seconds"] > 0 and np.isfinite(r["seconds"]), r
        assert r["unit"] in ("GFLOP/s", "GB/s"), r
        np.testing.assert_allclose(r["rate"], r["amount"] / r["seconds"] / 1e9, rtol=1e-9)
        ceiling = c["matmul_gflops"] if r["unit"] == "GFLOP/s" else c["copy_gbs"]
        np.testing.assert_allclose(r["pct_ceiling"], 100 * r["rate"] / ceiling, rtol=1e-9)
        alts = [x for x in timed if x["shape"] == r["shape"] and x["kind"] == "alternative"]
        if not alts:
            # no alternative installed for this problem (torch absent: conv2d's backward passes
            # have no NumPy formulation): legitimate, the row has no ratio and the table says so
            assert r["ratio"] is None and r["best_alternative"] is None, r
            continue
        assert r["ratio"] is not None and r["ratio"] > 0, r
        best = [x for x in alts if x["impl"] == r["best_alternative"]]
        assert best, r
        assert best[0]["seconds"] == min(a["seconds"] for a in alts), r
        np.testing.assert_allclose(r["ratio"], best[0]["seconds"] / r["seconds"], rtol=1e-9)
    # the best alternative has ratio 1 and no alternative beats it
    for shape in {r["shape"] for r in timed}:
        alts = [r for r in timed if r["shape"] == shape and r["kind"] == "alternative"]
        if alts:
            assert max(a["ratio"] for a in alts) == pytest.approx(1.0)


def test_rows_without_an_alternative_print_a_dash():
    # a synthetic result: one problem with an alternative, one without (as conv2d's backward
    # passes are when torch is not installed)
    def row(shape, impl, kind, seconds, best):
        return {"op": "conv2d", "shape": shape, "impl": impl, "kind": kind, "device": "cpu",
                "status": "ok", "amount": 1e9, "unit": "GFLOP/s", "seconds": seconds, "rounds": 3,
                "rate": 1 / seconds, "pct_ceiling": 10.0,
                "ratio": (best / seconds) if best else None, "best_alternative": "numpy" if best else None}
    result = {"rows": [row("with alt", "cpu", "pixelforge", 0.5, 1.0),
                       row("with alt", "numpy", "alternative", 1.0, 1.0),
                       row("no alt", "cpu", "pixelforge", 0.5, None)]}
    lines = benchmarks.format_table(result).splitlines()
    assert lines[1].rstrip().endswith("2.00x numpy"), lines[1]
    assert lines[3].rstrip().endswith("\u2013"), lines[3]
    assert json.loads(json.dumps(result))["rows"][2]["ratio"] is None


def test_table_printed_and_missing_ops_reported(quick_run):
    result, out, png = quick_run
    assert "ceilings: float32 matmul" in out and "vs best alt" in out
    for r in result["rows"]:
        assert r["shape"] in out
    # the ops still on other branches are reported as skipped, the ones here are not
    skipped = {s["op"] for s in result["skipped"]}
    assert "conv2d" not in skipped and "attention" not in skipped
    if png is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_fail_cleanly(tmp_path):
    proc = _bench(["--op", "nonsense", "--no-progress"])
    assert proc.returncode == 2 and "--op" in proc.stderr
    proc = _bench(["--impl", "fortran", "--no-progress"])
    assert proc.returncode == 2 and "--impl" in proc.stderr
    # --plot without matplotlib: a clear message before anything is timed
    proc = _bench(["--plot", str(tmp_path / "x.png"), "--quick", "--op", "bias_act", "--no-progress"],
                  extra_code="import sys; sys.modules['matplotlib'] = None")
    assert proc.returncode == 2 and "matplotlib" in proc.stderr, proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_impl_filter_and_op_selection(tmp_path):
    js = tmp_path / "o.json"
    proc = _bench(["--quick", "--op", "bias_act", "--impl", "ref", "--json", str(js), "--no-progress",
                   "--rounds", "1"])
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(js.read_text())["rows"]
    assert {r["op"] for r in rows} == {"bias_act"}
    assert {r["impl"] for r in rows if r["kind"] == "pixelforge"} == {"ref"}


def test_bench_suites_share_the_shape_table():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import bench_attention
        import bench_conv2d
    finally:
        sys.path.pop(0)
    assert bench_conv2d.SHAPES is benchmarks.SHAPES["conv2d"]
    assert bench_conv2d.PASSES == benchmarks.CONV_PASSES
    assert bench_attention.POINTS == [tuple(p) for p in benchmarks.SHAPES["attention"]["points"]]
    assert (bench_attention.H, bench_attention.D) == (benchmarks.SHAPES["attention"]["H"],
                                                      benchmarks.SHAPES["attention"]["D"])
    # the shapes: conv2d A-E, attention L = 256/1024/4096, sampling 16M elements
    assert set(benchmarks.SHAPES["conv2d"]) == set("ABCDE")
    assert [L for L, _ in benchmarks.SHAPES["attention"]["points"]] == [256, 1024, 4096]
    assert np.prod(benchmarks.SHAPES["sampling"]["shape"]) == 1 << 24
