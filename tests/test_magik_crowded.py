"""MAGIK link training: the crowded share of training windows (``--crowded``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

from edgetrack.runtime.errors import ConfigError  # noqa: E402
from edgetrack.training.magik.data import NO_AUGMENT, _crowded_draw, link_graph  # noqa: E402
from edgetrack.training.magik.train import TrainConfig  # noqa: E402


def test_crowded_draws_stay_in_the_benchmarks_high_crowding_range():
    rng = np.random.default_rng(3)
    draws = [_crowded_draw(rng) for _ in range(400)]
    side = np.array([s for s, _, _ in draws])
    rho = np.array([r for _, r, _ in draws])
    d = np.array([v for _, _, v in draws])
    c = rho * d
    assert set(side.tolist()) <= {32, 48}
    assert rho.min() >= 0.015 and rho.max() <= 0.045
    assert d.max() <= 8.0
    uncapped = d < 8.0
    assert c[uncapped].min() >= 0.015 - 1e-12 and c.max() <= 0.15 + 1e-12
    # the benchmark's c = 0.047 and 0.094 both lie well inside the drawn range
    assert (c > 0.047).mean() > 0.3 and (c > 0.094).mean() > 0.1


def _neighbours_per_node(g) -> float:
    return len(g.edges.src) / max(1, len(g.frame))


def test_crowded_windows_have_more_candidates_per_detection_relative_to_the_step():
    """Crowded windows: more particles within a few steps of each other than the original mix."""

    def crowding(crowded: float) -> float:
        rng = np.random.default_rng(11)
        vals = []
        for _ in range(30):
            g = link_graph(rng, NO_AUGMENT, crowded=crowded)
            if len(g.edges.src):
                vals.append(_neighbours_per_node(g))
        return float(np.median(vals))

    assert crowding(1.0) > 1.5 * crowding(0.0)


def test_crowded_zero_keeps_the_original_random_stream():
    """crowded=0 draws no extra random number, so older training commands still reproduce."""
    a = link_graph(np.random.default_rng(5), NO_AUGMENT)
    b = link_graph(np.random.default_rng(5), NO_AUGMENT, crowded=0.0)
    np.testing.assert_array_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.y, b.y)
    c = link_graph(np.random.default_rng(5), NO_AUGMENT, crowded=1.0)
    assert len(c.frame) != len(a.frame) or not np.array_equal(c.y, a.y)


def test_crowded_share_is_validated_and_recorded(tmp_path):
    with pytest.raises(ConfigError):
        TrainConfig(task="link", crowded=1.5)
    from edgetrack.training.magik.cli import train_and_export

    entry = train_and_export("link", 0, tmp_path, steps=2, eval_graphs=0, command="test", parity_sizes=(3,),
                             crowded=0.5)
    assert math.isclose(entry["training"]["crowded_share"], 0.5)
