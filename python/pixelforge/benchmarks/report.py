"""The results of ``pixelforge bench``: the printed table and the bar chart."""
from __future__ import annotations

import numpy as np


def format_table(result):
    rows = result["rows"]
    if not rows:
        return "(no rows)"
    w = max(len(r["shape"]) for r in rows)
    lines = [f"{'shape':<{w}}  {'impl':<12} {'dev':<4} {'time':>11} {'rate':>17} {'% ceil':>7} "
             f"{'vs best alt':>17}"]
    last = None
    for r in rows:
        shape = r["shape"] if r["shape"] != last else ""
        last = r["shape"]
        if "seconds" not in r:
            lines.append(f"{shape:<{w}}  {r['impl']:<12} {r['device']:<4} {r['status']}")
            continue
        t = r["seconds"]
        ts = f"{t * 1e3:8.3f} ms" if t >= 1e-3 else f"{t * 1e6:8.1f} us"
        pct = f"{r['pct_ceiling']:6.1f}%" if r["pct_ceiling"] is not None else "      -"
        # no alternative installed for this problem (e.g. torch absent): no ratio
        ratio = f"{r['ratio']:6.2f}x {r['best_alternative']}" if r["ratio"] is not None else "\u2013"
        lines.append(f"{shape:<{w}}  {r['impl']:<12} {r['device']:<4} {ts:>11} {r['rate']:9.2f} {r['unit']:<7} "
                     f"{pct:>7} {ratio:>17}")
    return "\n".join(lines)


def plot(result, path):
    """A horizontal bar chart of the rates, one bar per row, grouped by shape."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    rows = [r for r in result["rows"] if "rate" in r]
    labels = [f"{r['shape']} | {r['impl']}" for r in rows]
    colors = ["tab:blue" if r["kind"] == "pixelforge" else "tab:gray" for r in rows]
    fig, ax = plt.subplots(figsize=(11, max(3.0, 0.22 * len(rows) + 1)))
    y = np.arange(len(rows))
    ax.barh(y, [r["pct_ceiling"] if r["pct_ceiling"] is not None else 0 for r in rows], color=colors)
    ax.set_yticks(y, labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("% of this machine's ceiling (matmul GFLOP/s or copy GB/s); blue: pixelforge, gray: alternatives")
    c = result["ceilings"]
    ax.set_title(f"pixelforge bench: matmul {c['matmul_gflops']:.0f} GFLOP/s, copy {c['copy_gbs']:.1f} GB/s")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
