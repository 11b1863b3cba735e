"""The one table of benchmark shapes and the FLOP counts of the ops' passes: ``pixelforge
bench`` and the scripts in bench/ time the same problems and count them the same way."""
from __future__ import annotations

# ----------------------------------------------------------------------------- the shapes
# The one table of benchmark shapes. bench/bench_conv2d.py and bench/bench_attention.py read
# theirs from here, so the command and the pytest-benchmark suites time the same problems.
SHAPES = {
    # issue 3: name -> (N, Cin, Cout, H(=W), k, stride, pad, transpose); E is conv_transpose2d
    "conv2d": {
        "A": (64, 64, 64, 32, 3, 1, 1, False),
        "B": (128, 1, 32, 28, 3, 1, 1, False),
        "C": (32, 128, 128, 16, 3, 1, 1, False),
        "D": (128, 64, 128, 8, 4, 2, 1, False),
        "E": (128, 128, 64, 4, 4, 2, 1, True),
    },
    # issue 4: float32, H=8 heads of D=64; (L, B) points
    "attention": {"H": 8, "D": 64, "points": [(256, 8), (1024, 2), (4096, 1)]},
    # issue 5: 16M float32 elements (N, C, H, W) for the sampling ops
    "sampling": {"shape": (64, 4, 256, 256)},
    # (M, K, N): a square GEMM and two linear-layer shapes (tokens x features)
    "matmul": [(2048, 2048, 2048), (8192, 512, 2048), (4096, 1024, 256)],
    # a small conv net on 8x8 digits, one optimizer step: batch, channels, image side, classes
    "train_step": {"batch": 128, "channels": (1, 32, 64), "side": 8, "classes": 10},
    # fused bias + leaky ReLU over (N, C, L)
    "bias_act": {"shape": (16, 64, 8192)},
}

QUICK_SHAPES = {
    "conv2d": {k: (min(v[0], 2),) + v[1:] for k, v in SHAPES["conv2d"].items()},
    "attention": {"H": 8, "D": 64, "points": [(256, 1)]},
    "sampling": {"shape": (4, 4, 128, 128)},
    "matmul": [(256, 256, 256), (512, 128, 256)],
    "train_step": {"batch": 16, "channels": (1, 8, 16), "side": 8, "classes": 10},
    "bias_act": {"shape": (4, 64, 1024)},
}

CONV_PASSES = ("forward", "backward_data", "backward_weight")
OPS = ("conv2d", "attention", "sampling", "matmul", "train_step", "bias_act")


def shapes(quick=False):
    return QUICK_SHAPES if quick else SHAPES


def conv2d_flops(N, cin, cout, H, k, s, p, transpose):
    """Multiply-adds x 2 of one pass (all three passes do the same work)."""
    if transpose:  # the conv2d view: an (Hout -> H) convolution; its work scales with the input side H
        return 2 * N * cin * cout * k * k * H * H
    P = (H + 2 * p - k) // s + 1
    return 2 * N * cout * cin * k * k * P * P


def attention_flops(L, B, H, D, causal, direction="forward"):
    """The conventional count: 4·B·H·L²·D forward (halved when causal), 2.5x that backward."""
    f = 4.0 * B * H * L * L * D * (0.5 if causal else 1.0)
    return f * (2.5 if direction == "backward" else 1.0)
