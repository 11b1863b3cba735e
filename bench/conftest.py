"""Shared bench machinery (pytest-benchmark): every bench test records the bytes or flops it
moves; at the end one table prints each result's rate and its ratio to the best alternative
(NumPy / torch) in the same group, measured in the same process.

Run: ``pytest bench/bench_<op>.py`` (add ``--benchmark-json out.json`` to keep the numbers).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
_records = []  # (group, name, seconds, amount, unit, is_alternative)


@pytest.fixture
def record(benchmark):
    """``record(fn, group=..., name=..., amount=bytes_or_flops, unit="GB/s"|"GFLOP/s", alt=False)``."""

    def run(fn, *, group, name, amount, unit="GB/s", alt=False, rounds=None):
        benchmark.group = group
        benchmark.extra_info.update(name=name, amount=amount, unit=unit)
        if rounds:
            benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1, iterations=1)
        else:
            benchmark(fn)
        secs = benchmark.stats.stats.median
        benchmark.extra_info["rate"] = amount / secs / 1e9
        _records.append((group, name, secs, amount, unit, alt))
    return run


def pytest_terminal_summary(terminalreporter):
    if not _records:
        return
    tr = terminalreporter
    tr.section("pixelforge rates (median)")
    groups = {}
    for rec in _records:
        groups.setdefault(rec[0], []).append(rec)
    for group, recs in groups.items():
        alts = [r for r in recs if r[5]]
        best_alt = min((r[2] for r in alts), default=None)
        best_name = min(alts, key=lambda r: r[2])[1] if alts else None
        tr.write_line(f"{group}")
        for _, name, secs, amount, unit, alt in recs:
            ratio = f"{best_alt / secs:6.2f}x vs {best_name}" if best_alt and not alt else ""
            tr.write_line(f"  {name:<28} {secs * 1e3:9.3f} ms {amount / secs / 1e9:9.2f} {unit:<8} {ratio}")
