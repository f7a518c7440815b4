"""Diffusional fingerprints: definitions on tracks with known answers, units, per-segment tables, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from edgetrack.runtime.errors import InputError
from edgetrack.runtime.motion.fingerprints import FEATURE_NAMES, FEATURE_UNITS, fingerprint_arrays, fingerprint_table

IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def _table(tracks: list[np.ndarray], ids=None) -> pd.DataFrame:
    ids = list(range(len(tracks))) if ids is None else ids
    rows = []
    for tid, pos in zip(ids, tracks):
        d = {"track_id": tid, "frame": np.arange(len(pos))}
        cols = ("y", "x") if pos.shape[1] == 2 else ("z", "y", "x")
        for k, c in enumerate(cols):
            d[c] = pos[:, k]
        rows.append(pd.DataFrame(d))
    return pd.concat(rows, ignore_index=True)


def _one(pos: np.ndarray, modes: np.ndarray | None = None) -> dict[str, float]:
    f = fingerprint_arrays(pos, np.array([0]), np.array([len(pos)]), modes)[0]
    return dict(zip(FEATURE_NAMES, f))


def _brownian(n: int, D: float, seed: int, d: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0.0, np.sqrt(2 * D), (n, d)), axis=0)


def test_forty_named_features_with_units():
    assert len(FEATURE_NAMES) == 40 and len(set(FEATURE_NAMES)) == 40
    assert set(FEATURE_UNITS) == set(FEATURE_NAMES)


def test_straight_line_at_constant_speed():
    t = np.arange(50.0)
    f = _one(np.stack([0.5 * t, 0.0 * t], axis=1))
    assert f["efficiency"] == pytest.approx(1.0)
    assert f["alpha"] == pytest.approx(2.0, abs=1e-6)
    assert f["velocity"] == pytest.approx(0.5, rel=1e-6)
    assert f["fractal_dimension"] == pytest.approx(1.0)
    assert f["hull_volume"] == pytest.approx(0.0, abs=1e-9)
    assert f["dot_positive_fraction"] == 1.0 and f["dot_sign_persistence"] == 1.0
    assert f["mean_step"] == pytest.approx(0.5) and f["step_range"] == pytest.approx(0.0, abs=1e-12)
    assert f["msd_fit_r2"] == pytest.approx(1.0)


def test_brownian_motion_statistics():
    D = 0.7
    f = _one(_brownian(4000, D, 1))
    assert f["alpha"] == pytest.approx(1.0, abs=0.15)
    assert f["K"] == pytest.approx(D, rel=0.25)
    assert f["short_lag_D"] == pytest.approx(D, rel=0.15)
    assert abs(f["gaussianity"]) < 0.1
    assert abs(f["msd_ratio"]) < 0.05
    assert 0.3 < f["dot_positive_fraction"] < 0.7
    fracs = [f[f"step_state_{k}"] for k in range(4)]
    assert sum(fracs) == pytest.approx(1.0)
    assert np.isnan(f["frac_normal"]) and np.isnan(f["n_change_points"])  # no modes given


def test_msd_features_match_a_direct_computation():
    pos = _brownian(37, 1.3, 5)
    f = _one(pos)
    n = len(pos)
    lag_max = min(n - 1, max(4, n // 4), 100)
    msd = np.array([np.mean(np.sum((pos[lag:] - pos[:-lag]) ** 2, axis=1)) for lag in range(1, lag_max + 1)])
    slope, icpt = np.polyfit(np.log(np.arange(1, lag_max + 1)), np.log(msd), 1)
    assert f["alpha"] == pytest.approx(slope, rel=1e-9)
    assert f["K"] == pytest.approx(np.exp(icpt) / 4, rel=1e-9)
    assert f["mean_msd"] == pytest.approx(msd.mean(), rel=1e-12)
    steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    assert f["step_cv"] == pytest.approx(steps.std(ddof=1) / steps.mean(), rel=1e-9)
    dots = np.sum(np.diff(pos, axis=0)[:-1] * np.diff(pos, axis=0)[1:], axis=1)
    assert f["mean_dot"] == pytest.approx(dots.mean(), rel=1e-9)
    from scipy.spatial import ConvexHull

    assert f["hull_volume"] == pytest.approx(ConvexHull(pos).volume, rel=1e-9)


def test_units_scale_with_the_pixel_size():
    pos = _brownian(300, 1.0, 2)
    a, b = _one(pos), _one(3.0 * pos + 11.0)
    for name in ("alpha", "efficiency", "fractal_dimension", "gaussianity", "kurtosis", "msd_ratio",
                 "trappedness", "step_cv", "slow_fraction", "step_state_0", "dot_positive_fraction"):
        assert b[name] == pytest.approx(a[name], rel=1e-6, abs=1e-9), name
    for name, power in (("K", 2), ("short_lag_D", 2), ("mean_step", 1), ("mean_msd", 2), ("hull_volume", 2),
                        ("velocity", 1), ("max_step", 1)):
        assert b[name] == pytest.approx(a[name] * 3.0 ** power, rel=1e-6), name


def test_confined_track_is_trapped_and_bounded():
    rng = np.random.default_rng(4)
    p = np.zeros(2)
    out = []
    for _ in range(2000):  # Brownian steps folded into a disc of radius 2
        q = p + rng.normal(0, 0.5, 2)
        r = np.linalg.norm(q)
        if r > 2.0:
            q *= (4.0 - r) / r
        out.append(q)
        p = q
    conf = _one(np.array(out))
    free = _one(_brownian(2000, 0.125, 4))
    assert conf["hull_volume"] <= np.pi * 4.0 + 1e-9
    assert conf["trappedness"] > free["trappedness"]
    assert conf["alpha"] < 0.6 < free["alpha"]


def test_mode_features():
    pos = _brownian(20, 1.0, 3)
    modes = np.array([0] * 5 + [1] * 10 + [2] * 5)
    f = _one(pos, modes)
    assert [f["frac_normal"], f["frac_directed"], f["frac_confined"], f["frac_subdiffusive"]] == [0.25, 0.5, 0.25, 0.0]
    assert f["n_change_points"] == 2
    assert f["segment_length_max"] == 10 and f["segment_length_min"] == 5
    assert f["segment_length_mean"] == pytest.approx(20 / 3)
    assert f["mode_entropy"] == pytest.approx(-(2 * 0.25 * np.log(0.25) + 0.5 * np.log(0.5)))
    unknown = _one(pos, np.full(20, -1))
    assert np.isnan(unknown["frac_normal"])


def test_table_per_track_and_per_segment():
    tracks = [_brownian(60, 1.0, 7), _brownian(2, 1.0, 8), _brownian(1, 1.0, 9), _brownian(40, 0.2, 10)]
    df = _table(tracks, ids=[30, 10, 20, 5])
    shuffled = df.sample(frac=1.0, random_state=0)
    table = fingerprint_table(shuffled)
    assert list(table.columns) == ["track_id", *FEATURE_NAMES]
    assert list(table["track_id"]) == list(pd.unique(shuffled["track_id"]))
    by_id = table.set_index("track_id")
    assert by_id.loc[20].isna().all()  # one point
    assert np.isfinite(by_id.loc[10, "mean_step"]) and np.isnan(by_id.loc[10, "alpha"])  # two points
    ref = fingerprint_arrays(tracks[0], np.array([0]), np.array([60]))[0]
    np.testing.assert_allclose(by_id.loc[30, list(FEATURE_NAMES)].to_numpy(dtype=float), ref, equal_nan=True)

    segments = pd.DataFrame({"track_id": [30, 30, 5], "start": [0, 20, 10], "end": [19, 59, 29]})
    modes = df[["track_id", "frame"]].assign(mode=(df["frame"] >= 20).astype(int))
    seg = fingerprint_table(df, segments=segments, modes=modes)
    assert list(seg.columns[:3]) == ["track_id", "start", "end"] and len(seg) == 3
    sub = fingerprint_arrays(tracks[0][20:60], np.array([0]), np.array([40]), np.ones(40, dtype=int))[0]
    np.testing.assert_allclose(seg.iloc[1][list(FEATURE_NAMES)].to_numpy(dtype=float), sub, equal_nan=True)
    assert seg.iloc[0]["frac_normal"] == 1.0 and seg.iloc[1]["frac_directed"] == 1.0


def test_three_dimensional_tracks():
    pos = _brownian(200, 1.0, 11, d=3)
    f = fingerprint_table(_table([pos])).iloc[0]
    from scipy.spatial import ConvexHull

    assert f["hull_volume"] == pytest.approx(ConvexHull(pos).volume, rel=1e-9)
    assert f["K"] == pytest.approx(1.0, rel=0.5)


def test_bad_input_is_reported():
    df = _table([_brownian(10, 1.0, 1)])
    with pytest.raises(InputError, match="missing column"):
        fingerprint_table(df.drop(columns="x"))
    bad = df.copy()
    bad.loc[3, "y"] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fingerprint_table(bad)
    with pytest.raises(InputError, match="same frame"):
        fingerprint_table(pd.concat([df, df.iloc[:1]]))
    with pytest.raises(InputError, match="not in tracks"):
        fingerprint_table(df, segments=pd.DataFrame({"track_id": [99], "start": [0], "end": [3]}))
