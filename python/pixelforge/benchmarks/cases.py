"""The problems ``pixelforge bench`` times: per op, builders of (label, amount, unit, cases)
with every built pixelforge impl and the installed alternatives (NumPy, torch)."""
from __future__ import annotations

import math

import numpy as np

import pixelforge as pf

from .shapes import CONV_PASSES, attention_flops, conv2d_flops
from .timing import cupy_gpu, torch_or_none


def _lookup(path):
    """``pf.<a>.<b>`` or None when that part of the API is not in this installation. Op modules
    load lazily, so a missing module shows as ImportError, a missing name as AttributeError."""
    obj = pf
    try:
        for part in path.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj


def _impls(op, device, wanted):
    try:
        got = pf.available(op, device)
    except Exception:  # noqa: BLE001
        return []
    if wanted is None:
        # ref is the float64 truth for tests, orders of magnitude slower: only when asked for
        return [i for i in got if i != "ref"]
    return [i for i in got if i in wanted]


# ----------------------------------------------------------------------------- groups
# A group is one problem (op, shape, device) timed by its contenders together. Each builder
# returns (label, amount, unit, cases) lazily, so only one problem's arrays live at a time.
def _case(impl, kind, fn, device="cpu"):
    return {"impl": impl, "kind": kind, "fn": fn, "device": device}


def _numpy_conv2d(x, w, s, p):
    """float32 im2col + one BLAS GEMM: the fair NumPy way to do a convolution."""
    from numpy.lib.stride_tricks import sliding_window_view  # noqa: PLC0415
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (N, C, P, Q, k, k)
    out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, P, Q, K)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _conv2d_groups(sh, wanted, gpu):
    torch = torch_or_none()
    groups = []
    for name, (N, cin, cout, H, k, s, p, tr) in sh["conv2d"].items():
        for pas in CONV_PASSES:
            for device in (("cpu", "cuda") if gpu else ("cpu",)):
                def build(name=name, N=N, cin=cin, cout=cout, H=H, k=k, s=s, p=p, tr=tr, pas=pas, device=device):
                    g = np.random.default_rng(0)
                    x = g.standard_normal((N, cin, H, H)).astype(np.float32)
                    wshape = (cin, cout, k, k) if tr else (cout, cin, k, k)
                    w = (g.standard_normal(wshape) / math.sqrt(cin * k * k)).astype(np.float32)
                    f = pf.ops.conv_transpose2d if tr else pf.ops.conv2d
                    y = f(x, w, None, s, p)
                    gy = g.standard_normal(y.shape).astype(np.float32)
                    needs = (pas == "backward_data", pas == "backward_weight", False)
                    cases = []
                    xs = _to_device((x, w, gy), device)
                    for impl in _impls("conv2d", device, wanted):
                        xd, wd, gyd = xs
                        if pas == "forward":
                            fn = (lambda xd=xd, wd=wd, impl=impl: f(xd, wd, None, s, p, impl=impl))
                        else:
                            b = pf.ops.conv_transpose2d_backward if tr else pf.ops.conv2d_backward
                            fn = (lambda b=b, xd=xd, wd=wd, gyd=gyd, impl=impl:
                                  b(gyd, xd, wd, s, p, needs=needs, impl=impl))
                        cases.append(_case(impl, "pixelforge", fn, device))
                    if device == "cpu" and pas == "forward" and not tr:
                        cases.append(_case("numpy", "alternative", lambda: _numpy_conv2d(x, w, s, p)))
                    if torch is not None and (device == "cpu" or torch.cuda.is_available()):
                        dev = "cuda" if device == "cuda" else "cpu"
                        tx, tw, tgy = (torch.from_numpy(a).to(dev) for a in (x, w, gy))
                        F = torch.nn.functional
                        if pas == "forward":
                            tf = F.conv_transpose2d if tr else F.conv2d
                            fn = lambda: tf(tx, tw, None, s, p)  # noqa: E731
                        else:
                            mask = [pas == "backward_data", pas == "backward_weight", False]
                            fn = lambda: torch.ops.aten.convolution_backward(  # noqa: E731
                                tgy, tx, tw, None, [s, s], [p, p], [1, 1], tr, [0, 0], 1, mask)
                        cases.append(_case("torch", "alternative", fn, "torch-cuda" if device == "cuda" else "cpu"))
                    kind = "conv_transpose2d" if tr else "conv2d"
                    label = f"{name}: {kind} {pas} N{N} {cin}->{cout} {H}x{H} k{k} s{s} p{p}"
                    return label, conv2d_flops(N, cin, cout, H, k, s, p, tr), "GFLOP/s", cases
                groups.append(("conv2d", device, build))
    return groups


def _to_device(arrays, device):
    if device != "cuda":
        return arrays
    cp = cupy_gpu()
    return tuple(cp.asarray(a) for a in arrays)


def _numpy_attention(q, k, v, causal, scale):
    s = np.matmul(q, k.swapaxes(-1, -2)) * np.float32(scale)
    if causal:  # an additive -inf bias broadcasts; boolean-mask assignment would be 50x slower
        L = q.shape[2]
        s += np.triu(np.full((L, L), -np.inf, np.float32), 1)
    s -= s.max(-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(-1, keepdims=True)
    return np.matmul(s, v)


def _attention_groups(sh, wanted, gpu):
    torch = torch_or_none()
    a = sh["attention"]
    H, D = a["H"], a["D"]
    groups = []
    for L, B in a["points"]:
        for causal in (False, True):
            for direction in ("forward", "backward"):
                for device in (("cpu", "cuda") if gpu else ("cpu",)):
                    def build(L=L, B=B, causal=causal, direction=direction, device=device):
                        g = np.random.default_rng(0)
                        q, k, v, do = (g.standard_normal((B, H, L, D)).astype(np.float32) for _ in range(4))
                        qd, kd, vd, dod = _to_device((q, k, v, do), device)
                        cases = []
                        for impl in _impls("attention", device, wanted):
                            if direction == "forward":
                                fn = (lambda impl=impl: pf.ops.attention(qd, kd, vd, causal=causal, impl=impl))
                            else:
                                out, lse = pf.ops.attention(qd, kd, vd, causal=causal, return_lse=True, impl=impl)
                                fn = (lambda impl=impl, out=out, lse=lse: pf.ops.attention_backward(
                                    dod, qd, kd, vd, out, lse, causal=causal, impl=impl))
                            cases.append(_case(impl, "pixelforge", fn, device))
                        if device == "cpu" and direction == "forward":
                            cases.append(_case("numpy", "alternative",
                                               lambda: _numpy_attention(q, k, v, causal, D ** -0.5)))
                        if torch is not None and (device == "cpu" or torch.cuda.is_available()):
                            F = torch.nn.functional
                            dev = "cuda" if device == "cuda" else "cpu"
                            tq, tk, tv, tdo = (torch.from_numpy(x).to(dev) for x in (q, k, v, do))
                            if direction == "forward":
                                def fn():
                                    with torch.no_grad():
                                        return F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
                            else:
                                gq, gk, gv = (t.clone().requires_grad_(True) for t in (tq, tk, tv))
                                tout = F.scaled_dot_product_attention(gq, gk, gv, is_causal=causal)

                                def fn():  # the backward alone: the graph is kept
                                    gq.grad = gk.grad = gv.grad = None
                                    tout.backward(tdo, retain_graph=True)
                            cases.append(_case("torch", "alternative", fn, "torch-cuda" if device == "cuda" else "cpu"))
                        label = (f"attention {direction} B{B} H{H} L{L} D{D} {'causal' if causal else 'full'}")
                        return label, attention_flops(L, B, H, D, causal, direction), "GFLOP/s", cases
                    groups.append(("attention", device, build))
    return groups


def _sampling_groups(sh, wanted, gpu):
    torch = torch_or_none()
    shape = tuple(sh["sampling"]["shape"])
    n = int(np.prod(shape))
    groups = []

    def randn_build():
        randn = _lookup("random.randn")
        cases = []
        if randn is not None:
            cases.append(_case("auto", "pixelforge", lambda: randn(shape, seed=1)))
        g = np.random.default_rng(1)
        cases.append(_case("numpy", "alternative", lambda: g.standard_normal(shape, dtype=np.float32)))
        if torch is not None:
            cases.append(_case("torch", "alternative", lambda: torch.randn(shape)))
        # a draw writes every element once
        return f"randn {shape} float32 ({n / 1e6:.1f}M)", 4 * n, "GB/s", cases, randn is not None

    def reparam_build():
        rep = _lookup("ops.reparameterize")
        g = np.random.default_rng(0)
        mu = g.standard_normal(shape).astype(np.float32)
        logvar = (0.1 * g.standard_normal(shape)).astype(np.float32)
        cases = []
        if rep is not None:
            for impl in _impls("reparameterize", "cpu", wanted):
                cases.append(_case(impl, "pixelforge",
                                   lambda impl=impl: rep(mu, logvar, seed=1, impl=impl)))
        rng = np.random.default_rng(1)

        def np_fn():
            eps = rng.standard_normal(shape, dtype=np.float32)
            return mu + np.exp(np.float32(0.5) * logvar) * eps, eps
        cases.append(_case("numpy", "alternative", np_fn))
        if torch is not None:
            tmu, tlv = torch.from_numpy(mu), torch.from_numpy(logvar)

            def t_fn():
                eps = torch.randn(shape)
                return tmu + torch.exp(0.5 * tlv) * eps, eps
            cases.append(_case("torch", "alternative", t_fn))
        # reads mu, logvar; writes z, eps
        return f"reparameterize {shape} float32", 16 * n, "GB/s", cases, rep is not None

    def add_noise_build():
        add = _lookup("ops.add_noise")
        g = np.random.default_rng(0)
        x0 = g.standard_normal(shape).astype(np.float32)
        noise = g.standard_normal(shape).astype(np.float32)
        t = g.integers(0, 1000, shape[0]).astype(np.int64)
        ac = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
        cases = []
        if add is not None:
            cases.append(_case("auto", "pixelforge", lambda: add(x0, noise, t, ac)))
        bshape = (-1,) + (1,) * (len(shape) - 1)
        sa = np.sqrt(ac[t]).astype(np.float32).reshape(bshape)
        sb = np.sqrt(1 - ac[t]).astype(np.float32).reshape(bshape)
        cases.append(_case("numpy", "alternative", lambda: sa * x0 + sb * noise))
        if torch is not None:
            tx, tn, tsa, tsb = (torch.from_numpy(a) for a in (x0, noise, sa, sb))
            cases.append(_case("torch", "alternative", lambda: tsa * tx + tsb * tn))
        return f"add_noise {shape} float32", 12 * n, "GB/s", cases, add is not None

    def ddim_build():
        samplers = _lookup("samplers")
        schedules = _lookup("schedules")
        g = np.random.default_rng(0)
        eps_pred = g.standard_normal(shape).astype(np.float32)
        sample = g.standard_normal(shape).astype(np.float32)
        ac = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
        t, t_prev = 500, 480  # 50 steps over 1000
        cases = []
        ok = samplers is not None and schedules is not None and hasattr(samplers, "DDIMSampler")
        if ok:
            try:
                sampler = samplers.DDIMSampler(schedules.NoiseSchedule())
                sampler.set_timesteps(50)
                t = int(sampler.timesteps[len(sampler.timesteps) // 2])
                cases.append(_case("auto", "pixelforge", lambda: sampler.step(eps_pred, t, sample)))
            except Exception:  # noqa: BLE001
                ok = False
        a_t, a_p = np.float32(ac[t]), np.float32(ac[max(t - 20, 0)])

        def np_fn():  # DDIM, eta = 0, epsilon prediction, clip_sample
            x0 = np.clip((sample - np.sqrt(1 - a_t) * eps_pred) / np.sqrt(a_t), -1, 1)
            eps = (sample - np.sqrt(a_t) * x0) / np.sqrt(1 - a_t)
            return np.sqrt(a_p) * x0 + np.sqrt(1 - a_p) * eps
        cases.append(_case("numpy", "alternative", np_fn))
        if torch is not None:
            te, ts = torch.from_numpy(eps_pred), torch.from_numpy(sample)

            def t_fn():
                x0 = torch.clamp((ts - math.sqrt(1 - a_t) * te) / math.sqrt(a_t), -1, 1)
                eps = (ts - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
                return math.sqrt(a_p) * x0 + math.sqrt(1 - a_p) * eps
            cases.append(_case("torch", "alternative", t_fn))
        del t_prev
        # reads model output and sample, writes the previous sample
        return f"DDIM step {shape} float32", 12 * n, "GB/s", cases, ok

    for b in (randn_build, reparam_build, add_noise_build, ddim_build):
        groups.append(("sampling", "cpu", b))
    return groups


def _matmul_groups(sh, wanted, gpu):
    torch = torch_or_none()
    groups = []
    for M, K, N in sh["matmul"]:
        def build(M=M, K=K, N=N):
            mm = _lookup("ops.matmul")
            lin = _lookup("ops.linear")
            g = np.random.default_rng(0)
            a = g.standard_normal((M, K)).astype(np.float32)
            b = g.standard_normal((K, N)).astype(np.float32)
            w = np.ascontiguousarray(b.T)  # linear's weight (out, in)
            cases = []
            if mm is not None:
                for impl in _impls("matmul", "cpu", wanted):
                    cases.append(_case(impl, "pixelforge", lambda impl=impl: mm(a, b, impl=impl)))
            if lin is not None:
                for impl in _impls("linear", "cpu", wanted):
                    cases.append(_case(f"linear-{impl}", "pixelforge", lambda impl=impl: lin(a, w, impl=impl)))
            cases.append(_case("numpy", "alternative", lambda: a @ b))
            if torch is not None:
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)
                cases.append(_case("torch", "alternative", lambda: ta @ tb))
            return f"matmul {M}x{K} @ {K}x{N} float32", 2 * M * K * N, "GFLOP/s", cases, mm is not None
        groups.append(("matmul", "cpu", build))
    return groups


def _train_step_groups(sh, wanted, gpu):
    torch = torch_or_none()
    cfg = sh["train_step"]
    B, (c0, c1, c2), side, ncls = cfg["batch"], cfg["channels"], cfg["side"], cfg["classes"]
    half = side // 2
    # conv 3x3 p1 (c0->c1), conv 3x3 s2 p1 (c1->c2), linear (c2*half^2 -> classes): forward
    # flops; a step is forward + backward-data + backward-weight, 3x the forward
    fwd = (2 * B * c1 * c0 * 9 * side * side + 2 * B * c2 * c1 * 9 * half * half
           + 2 * B * c2 * half * half * ncls)

    def build():
        g = np.random.default_rng(0)
        x = g.standard_normal((B, c0, side, side)).astype(np.float32)
        y = g.standard_normal((B, ncls)).astype(np.float32)
        cases = []
        ok = False
        nn, optim, functional = _lookup("nn"), _lookup("optim"), _lookup("functional")
        if nn is not None and optim is not None and functional is not None:
            try:
                model = nn.Sequential(nn.Conv2d(c0, c1, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Flatten(), nn.Linear(c2 * half * half, ncls))
                opt = optim.Adam(model.parameters(), lr=1e-3)
                px, py = pf.Tensor(x), pf.Tensor(y)

                def pf_step():
                    opt.zero_grad()
                    loss = functional.mse_loss(model(px), py)
                    loss.backward()
                    opt.step()
                cases.append(_case("auto", "pixelforge", pf_step))
                ok = True
            except Exception:  # noqa: BLE001 - the layers' branch not merged yet
                ok = False
        if torch is not None:
            tn = torch.nn
            tm = tn.Sequential(tn.Conv2d(c0, c1, 3, padding=1), tn.ReLU(), tn.Conv2d(c1, c2, 3, stride=2, padding=1),
                               tn.ReLU(), tn.Flatten(), tn.Linear(c2 * half * half, ncls))
            topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)

            def t_step():
                topt.zero_grad()
                loss = torch.nn.functional.mse_loss(tm(tx), ty)
                loss.backward()
                topt.step()
            cases.append(_case("torch", "alternative", t_step))
        label = f"train step: conv{c0}-{c1}-{c2} + linear, batch {B}, {side}x{side}, Adam"
        return label, 3 * fwd, "GFLOP/s", cases, ok
    return [("train_step", "cpu", build)]


def _bias_act_groups(sh, wanted, gpu):
    torch = torch_or_none()
    shape = tuple(sh["bias_act"]["shape"])
    groups = []
    for device in (("cpu", "cuda") if gpu else ("cpu",)):
        def build(device=device):
            g = np.random.default_rng(0)
            x = g.standard_normal(shape).astype(np.float32)
            b = g.standard_normal(shape[1]).astype(np.float32)
            xd, bd = _to_device((x, b), device)
            cases = [_case(impl, "pixelforge", lambda impl=impl: pf.ops.bias_act(xd, bd, act="lrelu", impl=impl),
                           device) for impl in _impls("bias_act", device, wanted)]
            gain = np.float32(np.sqrt(2))
            if device == "cpu":
                def np_fn():
                    v = x + b[None, :, None]
                    return np.where(v > 0, v, v * np.float32(0.2)) * gain
                cases.append(_case("numpy", "alternative", np_fn))
            if torch is not None and (device == "cpu" or torch.cuda.is_available()):
                dev = "cuda" if device == "cuda" else "cpu"
                tx, tb = torch.from_numpy(x).to(dev), torch.from_numpy(b).to(dev)
                cases.append(_case("torch", "alternative",
                                   lambda: torch.nn.functional.leaky_relu(tx + tb[None, :, None], 0.2) * float(gain),
                                   "torch-cuda" if device == "cuda" else "cpu"))
            return f"bias_act lrelu {shape} float32", 2 * x.nbytes, "GB/s", cases
        groups.append(("bias_act", device, build))
    return groups


_BUILDERS = {"conv2d": _conv2d_groups, "attention": _attention_groups, "sampling": _sampling_groups,
             "matmul": _matmul_groups, "train_step": _train_step_groups, "bias_act": _bias_act_groups}
