"""A 10,000-frame stream through Tracker.push: memory stays flat (the 100,000-frame run is benchmarks/bench_soak.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to read resident memory")
def test_memory_is_flat_over_10000_frames():
    from bench_soak import run

    samples = run(n_frames=10_000, n_spots=50, every=1_000, linker="lap")
    rss = {t: mib for t, mib, _ in samples}
    growth = rss[10_000] - rss[2_000]
    assert growth < 15.0, f"resident memory grew by {growth:.1f} MiB from frame 2,000 to 10,000: {rss}"
