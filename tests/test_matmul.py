"""matmul / linear / linear_backward: every built impl against the float64 reference on random
shapes (odd, size-1, K = 0), every transpose combination, strided and broadcast views, fixed
shapes on every device in each dtype it takes (the CUDA kernels in float32, float16 and
bfloat16 too: marker ``gpu``), gradients by finite differences and torch autograd, every SIMD
path, thread-count independence of the bits, and bad inputs."""
import math

import numpy as np
import pytest

import pixelforge as pf
from opcheck import (TOL, built_impls, device_of, dtype_params, fast_impls, finite_diff, impl_dtype_params, noncontig,
                     rng, run_python, to_device, to_host64)

TRANS = [(False, False), (True, False), (False, True), (True, True)]
# (M, N, K): size-1 dims, odd sizes, K = 0, sizes that cross the micro-tile and k-block edges
SHAPES = [(1, 1, 1), (1, 300, 7), (300, 1, 5), (17, 33, 1), (5, 7, 0), (13, 37, 300), (64, 48, 256),
          (129, 257, 65), (100, 96, 288)]


# float16 / bfloat16 (the GPU's): storage rounds the output (2^-11 / 2^-8 relative) on top of
# float32 accumulation of exactly rounded products
_TOL = {**TOL, "float16": (2e-3, 2e-3), "bfloat16": (1.6e-2, 1.6e-2)}


def _close(actual, expected, dtype, k, what=""):
    """Against float64 with atol scaled by sqrt(K): each output is a sum of K products of
    unit-variance terms, and with rounding errors of random sign the absolute error of that sum
    grows like sqrt(K) times one term's rounding error. ``actual`` may be on the GPU."""
    rtol, atol = _TOL[dtype if isinstance(dtype, str) else np.dtype(dtype).name]
    actual = to_host64(actual)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * math.sqrt(max(k, 1)), err_msg=what)


def _operands(g, m, n, k, ta, tb, dtype, batch=None):
    lead = () if batch is None else (batch,)
    a = g.standard_normal(lead + ((k, m) if ta else (m, k))).astype(dtype)
    b = g.standard_normal(lead + ((n, k) if tb else (k, n))).astype(dtype)
    return a, b


def _ref(a, b, ta, tb):
    return pf.ops.matmul(a.astype(np.float64), b.astype(np.float64), trans_a=ta, trans_b=tb, impl="ref")


def test_registered_and_reference_available():
    for op in ("matmul", "linear", "linear_backward"):
        impls = built_impls(op)
        assert impls[-1] == "ref"
    assert callable(pf.ops.matmul) and callable(pf.ops.linear) and callable(pf.ops.linear_backward)


def test_reference_matches_numpy_directly():
    g = rng(0)
    a, b = g.standard_normal((4, 3)), g.standard_normal((5, 3))
    np.testing.assert_allclose(pf.ops.matmul(a, b, trans_b=True, impl="ref"), a @ b.T, rtol=1e-14)


@pytest.mark.parametrize("impl", built_impls("matmul"))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", TRANS)
def test_matmul_shapes_and_transposes(impl, dtype, ta, tb):
    g = rng()
    for m, n, k in SHAPES + [tuple(int(v) for v in g.integers(1, 301, 3))]:
        a, b = _operands(g, m, n, k, ta, tb, dtype)
        c = pf.ops.matmul(a, b, trans_a=ta, trans_b=tb, impl=impl)
        assert c.dtype == dtype and c.shape == (m, n)
        if k == 0:
            assert not np.any(c), "K = 0 must give zeros"
        _close(c, _ref(a, b, ta, tb), dtype, k, f"{impl} {m}x{n}x{k} ta={ta} tb={tb}")


@pytest.mark.parametrize("impl", built_impls("matmul"))
@pytest.mark.parametrize("ta,tb", TRANS)
def test_noncontiguous_negative_and_zero_strides(impl, ta, tb):
    g = rng()
    m, n, k = 23, 41, 37
    a, b = _operands(g, m, n, k, ta, tb, np.float32)
    for va, vb in [(noncontig(a), noncontig(b)), (a[::-1, ::-1], b[:, ::-1]),
                   (np.broadcast_to(a[:1], a.shape), np.broadcast_to(b[:, :1], b.shape))]:
        assert not (va.flags.c_contiguous and vb.flags.c_contiguous)
        c = pf.ops.matmul(va, vb, trans_a=ta, trans_b=tb, impl=impl)
        _close(c, _ref(np.array(va), np.array(vb), ta, tb), np.float32, k, impl)


@pytest.mark.parametrize("impl", built_impls("matmul"))
@pytest.mark.parametrize("ta,tb", TRANS)
def test_batched_and_broadcast(impl, ta, tb):
    g = rng()
    m, n, k = 19, 35, 21
    for ba, bb in [(3, 3), (1, 4), (4, 1), (None, 3), (3, None), (0, 0), (0, 1)]:
        a, _ = _operands(g, m, n, k, ta, tb, np.float32, ba)
        _, b = _operands(g, m, n, k, ta, tb, np.float32, bb)
        c = pf.ops.matmul(a, b, trans_a=ta, trans_b=tb, impl=impl)
        batch = bb if ba in (1, None) else ba
        assert c.shape == (batch, m, n)
        _close(c, _ref(a, b, ta, tb), np.float32, k, f"{impl} {ba} {bb}")
    # many small products: the batch-parallel path
    a, b = _operands(g, 9, 13, 11, ta, tb, np.float32, 40)
    _close(pf.ops.matmul(a, b, trans_a=ta, trans_b=tb, impl=impl), _ref(a, b, ta, tb), np.float32, 11, impl)
    # strided batch (every other matrix, transposed views)
    a, b = _operands(g, m, n, k, ta, tb, np.float32, 6)
    _close(pf.ops.matmul(a[::2], b[1::2], trans_a=ta, trans_b=tb, impl=impl),
           _ref(a[::2], b[1::2], ta, tb), np.float32, k, impl)


@pytest.mark.parametrize("impl", built_impls("matmul"))
def test_out_argument(impl):
    g = rng()
    a, b = _operands(g, 30, 20, 10, False, False, np.float32, 2)
    out = np.full((2, 30, 20), np.nan, np.float32)
    c = pf.ops.matmul(a, b, out=out, impl=impl)
    assert c is out
    _close(out, _ref(a, b, False, False), np.float32, 10, impl)


@pytest.mark.parametrize("impl", built_impls("linear"))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lead", [(), (1,), (7,), (2, 3), (0, 5), (129,)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear(impl, dtype, lead, with_bias):
    g = rng()
    for n_in, n_out in [(1, 1), (33, 17), (96, 288), (5, 0), (0, 6)]:
        x = g.standard_normal(lead + (n_in,)).astype(dtype)
        w = g.standard_normal((n_out, n_in)).astype(dtype)
        b = g.standard_normal(n_out).astype(dtype) if with_bias else None
        y = pf.ops.linear(x, w, b, impl=impl)
        x64, w64 = x.astype(np.float64), w.astype(np.float64)
        expect = x64 @ w64.T + (b.astype(np.float64) if with_bias else 0.0)
        assert y.dtype == dtype and y.shape == lead + (n_out,)
        _close(y, expect, dtype, n_in, f"{impl} {lead} {n_in}->{n_out}")


@pytest.mark.parametrize("impl", built_impls("linear"))
def test_linear_noncontiguous_input(impl):
    g = rng()
    x = g.standard_normal((6, 40)).astype(np.float32)
    w = g.standard_normal((40, 24)).astype(np.float32).T  # (24, 40) as a transposed view
    b = noncontig(g.standard_normal(24).astype(np.float32))
    y = pf.ops.linear(noncontig(x), w, b, impl=impl)
    _close(y, x.astype(np.float64) @ w.T.astype(np.float64) + b, np.float32, 40, impl)


@pytest.mark.parametrize("impl", built_impls("linear_backward"))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lead", [(1,), (37,), (2, 5), (0,), (300,)])
def test_linear_backward_matches_reference(impl, dtype, lead):
    g = rng()
    n_in, n_out = 29, 13
    x = g.standard_normal(lead + (n_in,)).astype(dtype)
    w = g.standard_normal((n_out, n_in)).astype(dtype)
    gy = g.standard_normal(lead + (n_out,)).astype(dtype)
    dx, dw, db = pf.ops.linear_backward(gy, x, w, impl=impl)
    rdx, rdw, rdb = pf.ops.linear_backward(gy.astype(np.float64), x.astype(np.float64), w.astype(np.float64),
                                           impl="ref")
    rows = math.prod(lead)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (n_out,)
    assert dx.dtype == dw.dtype == db.dtype == dtype
    _close(dx, rdx, dtype, n_out, impl)
    _close(dw, rdw, dtype, rows, impl)
    _close(db, rdb, dtype, rows, impl)
    # independent of the reference module
    _close(db, gy.astype(np.float64).reshape(rows, n_out).sum(0), dtype, rows, impl)


@pytest.mark.parametrize("impl", built_impls("linear_backward"))
def test_linear_backward_needs(impl):
    g = rng()
    x, w, gy = g.standard_normal((4, 3)), g.standard_normal((5, 3)), g.standard_normal((4, 5))
    full = pf.ops.linear_backward(gy, x, w, impl=impl)
    for needs in [(True, False, False), (False, True, False), (False, False, True), (False, False, False)]:
        got = pf.ops.linear_backward(gy, x, w, needs=needs, impl=impl)
        for want, value, ref in zip(needs, got, full):
            if want:
                np.testing.assert_array_equal(value, ref)
            else:
                assert value is None


@pytest.mark.parametrize("impl", fast_impls("linear_backward"))
def test_linear_backward_finite_differences(impl):
    g = rng()
    x, w, b = g.standard_normal((2, 3, 4)), g.standard_normal((5, 4)), g.standard_normal(5)
    gy = g.standard_normal((2, 3, 5))

    def loss_x(xv):
        return float(np.sum(pf.ops.linear(xv, w, b, impl=impl) * gy))

    def loss_w(wv):
        return float(np.sum(pf.ops.linear(x, wv, b, impl=impl) * gy))

    def loss_b(bv):
        return float(np.sum(pf.ops.linear(x, w, bv, impl=impl) * gy))
    dx, dw, db = pf.ops.linear_backward(gy, x, w, impl=impl)
    np.testing.assert_allclose(dx, finite_diff(loss_x, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dw, finite_diff(loss_w, w), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, finite_diff(loss_b, b), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("impl", fast_impls("linear_backward"))
def test_against_torch(impl):
    torch = pytest.importorskip("torch")
    g = rng()
    x = g.standard_normal((3, 50, 70)).astype(np.float32)
    w = g.standard_normal((45, 70)).astype(np.float32)
    b = g.standard_normal(45).astype(np.float32)
    gy = g.standard_normal((3, 50, 45)).astype(np.float32)
    tx, tw, tb = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (x, w, b))
    ty = torch.nn.functional.linear(tx, tw, tb)
    ty.backward(torch.tensor(gy, dtype=torch.float64))
    _close(pf.ops.linear(x, w, b, impl=impl), ty.detach().numpy(), np.float32, 70, "linear")
    dx, dw, db = pf.ops.linear_backward(gy, x, w, impl=impl)
    _close(dx, tx.grad.numpy(), np.float32, 45, "dx")
    _close(dw, tw.grad.numpy(), np.float32, 150, "dw")
    _close(db, tb.grad.numpy(), np.float32, 150, "db")
    a = g.standard_normal((4, 30, 20)).astype(np.float32)
    bb = g.standard_normal((4, 25, 20)).astype(np.float32)
    tc = torch.matmul(torch.tensor(a, dtype=torch.float64), torch.tensor(bb, dtype=torch.float64).transpose(1, 2))
    _close(pf.ops.matmul(a, bb, trans_b=True, impl=impl), tc.numpy(), np.float32, 20, "matmul")
    # torch tensors are accepted as inputs (converted, as every op does)
    _close(pf.ops.matmul(torch.from_numpy(a), torch.from_numpy(bb).transpose(1, 2), impl=impl), tc.numpy(),
           np.float32, 20, "torch tensors in")


# ----------------------------------------------------------------------------- every device
# Fixed shapes on every device in each dtype it takes (impl_dtype_params: the CPU in float32 /
# float64; the CUDA kernel in float32, float16 and bfloat16 under the ``gpu`` marker), against
# float64 products of the values the device holds.
DEVICE_SHAPES = [(1, 1, 1), (17, 33, 1), (5, 7, 0), (13, 37, 300), (64, 64, 16), (129, 257, 65), (100, 96, 288)]


def _device_dtypes(device, impl):
    """The dtypes each device takes, less the reference's pairs that test nothing: on the CPU
    in float64 it is the float64 reference; on the GPU in float16 / bfloat16 it is CuPy's
    matmul in that dtype (the reference computes in its input dtype), not a reference."""
    if impl == "ref":
        return ["float32"]
    return dtype_params(device)


@pytest.mark.parametrize("device,impl,dtype", impl_dtype_params("matmul", dtypes=_device_dtypes))
@pytest.mark.parametrize("ta,tb", TRANS)
def test_every_device_matmul_against_float64(device, impl, dtype, ta, tb):
    g = rng(1)
    for m, n, k in DEVICE_SHAPES:
        a = to_device(g.standard_normal((k, m) if ta else (m, k)), device, dtype)
        b = to_device(g.standard_normal((n, k) if tb else (k, n)), device, dtype)
        a64, b64 = to_host64(a), to_host64(b)
        c = pf.ops.matmul(a, b, trans_a=ta, trans_b=tb, impl=impl)
        assert device_of(c) == device and c.dtype == a.dtype and c.shape == (m, n)
        want = (a64.T if ta else a64) @ (b64.T if tb else b64)
        _close(c, want, dtype, k, f"{device}/{impl}/{dtype} {m}x{n}x{k} ta={ta} tb={tb}")


@pytest.mark.parametrize("device,impl,dtype", impl_dtype_params("matmul", dtypes=_device_dtypes))
def test_every_device_strided_batch_and_transposed_broadcast(device, impl, dtype):
    """Every other matrix of a batch times a column-reversed view broadcast over it, a 2-D
    operand transposed against a transposed batch, and an empty batch."""
    g = rng(2)
    a = to_device(g.standard_normal((5, 33, 20)), device, dtype)
    b = to_device(g.standard_normal((1, 20, 45)), device, dtype)
    a64, b64 = to_host64(a), to_host64(b)
    what = f"{device}/{impl}/{dtype}"
    c = pf.ops.matmul(a[::2], b[:, :, ::-1], impl=impl)
    assert device_of(c) == device and c.dtype == a.dtype
    _close(c, a64[::2] @ b64[:, :, ::-1], dtype, 20, f"strided batch {what}")
    c2 = pf.ops.matmul(b[0], a, trans_a=True, trans_b=True, impl=impl)  # (45, 20) @ (5, 20, 33)
    _close(c2, np.matmul(b64[0].T, np.swapaxes(a64, 1, 2)), dtype, 20, f"transposed broadcast {what}")
    empty = pf.ops.matmul(to_device(np.zeros((0, 3, 4)), device, dtype), to_device(np.zeros((4, 5)), device, dtype),
                          impl=impl)
    assert device_of(empty) == device and empty.shape == (0, 3, 5)


@pytest.mark.parametrize("device,impl,dtype", impl_dtype_params("linear", dtypes=_device_dtypes))
@pytest.mark.parametrize("with_bias", [True, False])
def test_every_device_linear_and_backward(device, impl, dtype, with_bias):
    g = rng(3)
    x = to_device(g.standard_normal((3, 70, 96)), device, dtype)
    w = to_device(g.standard_normal((288, 96)), device, dtype)
    b = to_device(g.standard_normal(288), device, dtype) if with_bias else None
    x64, w64 = to_host64(x), to_host64(w)
    b64 = to_host64(b) if with_bias else 0.0
    what = f"{device}/{impl}/{dtype}"
    y = pf.ops.linear(x, w, b, impl=impl)
    assert device_of(y) == device and y.dtype == x.dtype and y.shape == (3, 70, 288)
    _close(y, x64 @ w64.T + b64, dtype, 96, f"linear {what}")
    gy = to_device(g.standard_normal((3, 70, 288)), device, dtype)
    gy64 = to_host64(gy)
    dx, dw, db = pf.ops.linear_backward(gy, x, w, impl=impl)
    assert all(device_of(t) == device and t.dtype == x.dtype for t in (dx, dw, db))
    g2, x2 = gy64.reshape(-1, 288), x64.reshape(-1, 96)
    _close(dx, gy64 @ w64, dtype, 288, f"dx {what}")
    _close(dw, g2.T @ x2, dtype, 210, f"dw {what}")
    _close(db, g2.sum(0), dtype, 210, f"db {what}")
    # K = 0: bias only
    bias = to_device(np.arange(3), device, dtype)
    y0 = pf.ops.linear(to_device(np.zeros((4, 0)), device, dtype), to_device(np.zeros((3, 0)), device, dtype), bias,
                       impl=impl)
    assert device_of(y0) == device and y0.dtype == bias.dtype
    np.testing.assert_array_equal(to_host64(y0), np.broadcast_to(np.arange(3.0), (4, 3)))


def test_every_simd_path():
    """The C++ kernel with each ISA the machine supports, forced by PIXELFORGE_CPU_ISA."""
    if "cpu" not in built_impls("matmul"):
        pytest.skip("C++ module not built")
    native = pf.info()["cpu"]["native_isa"]
    order = ["generic", "avx2", "avx512"]
    for isa in order[: order.index(native) + 1]:
        out = run_python("""
            import math
            import numpy as np, pixelforge as pf
            g = np.random.default_rng(11)
            worst = 0.0
            for dt in (np.float32, np.float64):
                for m, n, k in [(1, 1, 1), (13, 37, 300), (150, 70, 513), (40, 33, 8)]:
                    for ta in (False, True):
                        for tb in (False, True):
                            a = g.standard_normal((k, m) if ta else (m, k)).astype(dt)
                            b = g.standard_normal((n, k) if tb else (k, n)).astype(dt)
                            c = pf.ops.matmul(a, b, trans_a=ta, trans_b=tb, impl="cpu")
                            r = pf.ops.matmul(a.astype(np.float64), b.astype(np.float64), trans_a=ta,
                                              trans_b=tb, impl="ref")
                            scale = 1e-5 if dt == np.float32 else 1e-12
                            worst = max(worst, np.abs(c - r).max() / math.sqrt(k) / scale)
                x = g.standard_normal((37, 45)).astype(dt)
                w = g.standard_normal((19, 45)).astype(dt)
                bias = g.standard_normal(19).astype(dt)
                y = pf.ops.linear(x, w, bias, impl="cpu")
                r = x.astype(np.float64) @ w.T.astype(np.float64) + bias
                worst = max(worst, np.abs(y - r).max() / math.sqrt(45) / (1e-5 if dt == np.float32 else 1e-12))
            print(pf.info()["cpu"]["isa"], worst)
        """, env={"PIXELFORGE_CPU_ISA": isa})
        got_isa, worst = out.split()
        assert got_isa == isa
        # worst error in units of the scaled float atol (see _close): must stay below 1
        assert float(worst) < 1.0, (isa, worst)


def test_thread_count_does_not_change_bits():
    if "cpu" not in built_impls("matmul"):
        pytest.skip("C++ module not built")
    code = """
        import hashlib
        import numpy as np, pixelforge as pf
        g = np.random.default_rng(3)
        h = hashlib.sha256()
        for dt in (np.float32, np.float64):
            a = g.standard_normal((333, 700)).astype(dt)     # several k blocks, edge tiles
            b = g.standard_normal((700, 190)).astype(dt)
            h.update(pf.ops.matmul(a, b, impl="cpu").tobytes())
            h.update(pf.ops.matmul(a, a, trans_b=True, impl="cpu").tobytes())
            x = g.standard_normal((4096 + 5, 96)).astype(dt)
            w = g.standard_normal((384, 96)).astype(dt)
            gy = g.standard_normal((4096 + 5, 384)).astype(dt)
            h.update(pf.ops.linear(x, w, g.standard_normal(384).astype(dt), impl="cpu").tobytes())
            for t in pf.ops.linear_backward(gy, x, w, impl="cpu"):
                h.update(t.tobytes())
            h.update(pf.ops.matmul(g.standard_normal((40, 9, 31)).astype(dt), b[:31, :17], impl="cpu").tobytes())
            # small C, long K: partial products over fixed K blocks (a narrow layer's dW; bias)
            gy17 = g.standard_normal((4096 + 5, 17)).astype(dt)
            h.update(pf.ops.linear_backward(gy17, x, w[:17], impl="cpu")[1].tobytes())
            h.update(pf.ops.linear(g.standard_normal((50, 3001)).astype(dt), g.standard_normal((10, 3001)).astype(dt),
                                   g.standard_normal(10).astype(dt), impl="cpu").tobytes())
        print(h.hexdigest())
    """
    one = run_python(code, env={"OMP_NUM_THREADS": "1"})
    two = run_python(code, env={"OMP_NUM_THREADS": "2"})
    three = run_python(code, env={"OMP_NUM_THREADS": "3"})
    assert one == two == three


@pytest.mark.parametrize("impl", built_impls("matmul"))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m,n,k,ta,tb", [(1, 1, 2048, False, False), (7, 30, 5000, True, False),
                                         (30, 7, 9001, False, True), (50, 64, 4101, True, True),
                                         (96, 96, 4096, True, False), (200, 100, 2500, False, False)])
def test_long_k_small_c_against_float64(impl, dtype, m, n, k, ta, tb):
    """A small C over a long reduction (the C++ path splits K into fixed blocks and sums their
    products in order; 200x100 has too many tiles and stays unsplit): against float64, with
    transposed operands, and as linear with a bias."""
    g = np.random.default_rng(m * 7 + n)
    a64 = g.standard_normal((k, m) if ta else (m, k))
    b64 = g.standard_normal((n, k) if tb else (k, n))
    want = (a64.T if ta else a64) @ (b64.T if tb else b64)
    got = pf.ops.matmul(a64.astype(dtype), b64.astype(dtype), trans_a=ta, trans_b=tb, impl=impl)
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(k))
    bias = g.standard_normal(n)
    x = (a64.T if ta else a64)
    got = pf.ops.linear(x.astype(dtype), (b64 if tb else b64.T).astype(dtype), bias.astype(dtype), impl=impl)
    np.testing.assert_allclose(got, want + bias, rtol=tol, atol=tol * np.sqrt(k))


@pytest.mark.parametrize("impl", built_impls("matmul"))
def test_errors_name_the_argument(impl):
    a = np.zeros((3, 4), np.float32)
    b = np.zeros((4, 5), np.float32)
    cases = [
        (lambda: pf.ops.matmul(a, np.zeros((5, 5), np.float32), impl=impl), ValueError, "b: inner"),
        (lambda: pf.ops.matmul(a, b, trans_a=True, impl=impl), ValueError, "b: inner"),
        (lambda: pf.ops.matmul(np.zeros(4, np.float32), b, impl=impl), ValueError, "a: expected 2 or 3"),
        (lambda: pf.ops.matmul(a, np.zeros((1, 1, 4, 5), np.float32), impl=impl), ValueError, "b: expected 2 or 3"),
        (lambda: pf.ops.matmul(a.astype(np.int32), b, impl=impl), TypeError, "a: .*integer"),
        (lambda: pf.ops.matmul(a, b.astype(np.float64), impl=impl), TypeError, "b: dtype float64 differs"),
        (lambda: pf.ops.matmul(np.zeros((2, 3, 4), np.float32), np.zeros((3, 4, 5), np.float32), impl=impl),
         ValueError, "b: batch"),
        (lambda: pf.ops.matmul(a, b, out=np.zeros((3, 6), np.float32), impl=impl), ValueError, "out: shape"),
        (lambda: pf.ops.matmul(a, b, out=np.zeros((3, 5), np.float64), impl=impl), TypeError, "out: dtype"),
        (lambda: pf.ops.matmul(a, b, out=np.zeros((5, 3), np.float32).T, impl=impl), ValueError, "out: must be C"),
        (lambda: pf.ops.matmul(a, b, trans_a=1, impl=impl), TypeError, "trans_a"),
        (lambda: pf.ops.matmul("x", b, impl=impl), TypeError, "a:"),
        (lambda: pf.ops.linear(np.zeros((2, 4), np.float32), np.zeros((3, 5), np.float32), impl=impl),
         ValueError, "weight: in_features"),
        (lambda: pf.ops.linear(np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float32),
                               np.zeros(2, np.float32), impl=impl), ValueError, "bias: length"),
        (lambda: pf.ops.linear(np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float32),
                               np.zeros(3, np.float64), impl=impl), TypeError, "bias: dtype"),
        (lambda: pf.ops.linear(np.zeros((2, 4), np.int64), np.zeros((3, 4), np.float32), impl=impl),
         TypeError, "x:"),
        (lambda: pf.ops.linear(np.zeros((2, 4), np.float32), np.zeros((3, 4, 1), np.float32), impl=impl),
         ValueError, "weight: expected 2"),
        (lambda: pf.ops.linear_backward(np.zeros((2, 2), np.float32), np.zeros((2, 4), np.float32),
                                        np.zeros((3, 4), np.float32), impl=impl), ValueError, "grad_out"),
        (lambda: pf.ops.linear_backward(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32),
                                        np.zeros((3, 4), np.float32), needs=(True,), impl=impl), TypeError, "needs"),
        (lambda: pf.ops.matmul(a, b, impl="fastest"), ValueError, "impl"),
    ]
    for fn, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            fn()


def test_out_overlapping_an_input_is_refused():
    a = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="out: overlaps a"):
        pf.ops.matmul(a, np.eye(4, dtype=np.float32), out=a)


def test_native_module_rechecks_arguments():
    mod = pf._backend.cpu_module()
    if mod is None or not hasattr(mod, "matmul"):
        pytest.skip("C++ module not built")
    a = np.zeros((3, 4), np.float32)
    b = np.zeros((4, 5), np.float32)
    out = np.zeros((1, 3, 5), np.float32)
    with pytest.raises(ValueError, match="b: inner"):
        mod.matmul(a, np.zeros((6, 5), np.float32), out, None, False, False)
    with pytest.raises(ValueError, match="out"):
        mod.matmul(a, b, np.zeros((1, 3, 6), np.float32), None, False, False)
    with pytest.raises(ValueError, match="out"):
        mod.matmul(a, b, np.zeros((3, 5), np.float32), None, False, False)
    with pytest.raises(ValueError, match="out"):
        mod.matmul(a, b, np.zeros((1, 5, 3), np.float32).transpose(0, 2, 1), None, False, False)
    with pytest.raises(ValueError, match="bias"):
        mod.matmul(a, b, out, np.zeros(4, np.float32), False, False)
    with pytest.raises(ValueError, match="b: dtype"):
        mod.matmul(a, b.astype(np.float64), out, None, False, False)
    with pytest.raises(ValueError, match="a: expected 2 or 3"):
        mod.matmul(np.zeros(3, np.float32), b, out, None, False, False)
    with pytest.raises(TypeError, match="a: expected float32"):
        mod.matmul(a.astype(np.int32), b, out, None, False, False)
    with pytest.raises(ValueError, match="db"):
        mod.matmul_colsum(np.zeros((3, 4), np.float32), np.zeros(5, np.float32))
