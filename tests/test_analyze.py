"""``edgetrack analyze`` and its Python API with the exported motion network."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from edgetrack.runtime.motion.analyze import (
    MotionEstimator,
    analyze_tracks,
    andi_rows,
    split_tracks,
    write_analysis,
)
from edgetrack.runtime.cli.app import main
from edgetrack.runtime.errors import InputError, ModelError
from edgetrack.runtime.models.onnx import load_model, model_names
from edgetrack.runtime.motion.network import MODEL_NAME, msd_fit
from edgetrack.runtime.metrics.motion import SegmentLabels, single_trajectory_scores

pytestmark = pytest.mark.skipif(MODEL_NAME not in model_names(), reason="the andi_motion model is not exported")


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL_NAME, provider="cpu")


def _brownian(n_tracks: int, n: int, K: float, seed: int, first: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n_tracks):
        pos = np.cumsum(rng.normal(0, np.sqrt(2 * K), (n, 2)), axis=0) + rng.uniform(20, 100, 2)
        frames = np.arange(first, first + n)
        parts.append(pd.DataFrame({"track_id": i, "frame": frames, "y": pos[:, 0], "x": pos[:, 1]}))
    return pd.concat(parts, ignore_index=True)


def _trapped(n: int, seed: int) -> pd.DataFrame:
    """Free (K = 1) for n frames, then immobile (noise 0.12 px) for n frames."""
    rng = np.random.default_rng(seed)
    free = np.cumsum(rng.normal(0, np.sqrt(2.0), (n, 2)), axis=0)
    still = free[-1] + rng.normal(0, 0.12, (n, 2))
    pos = np.r_[free, still] + 60.0
    return pd.DataFrame({"track_id": 100, "frame": np.arange(2 * n), "y": pos[:, 0], "x": pos[:, 1]})


def test_split_tracks_gaps_and_errors():
    df = pd.DataFrame({"track_id": [1, 1, 1, 2], "frame": [5, 6, 9, 0], "y": [0.0, 1.0, 4.0, 3.0],
                       "x": [0.0, 0.0, 0.0, 1.0]})
    items = split_tracks(df)
    assert [t.track_id for t in items] == [1, 2]
    np.testing.assert_allclose(items[0].positions[:, 0], [0, 1, 2, 3, 4])  # frames 7, 8 interpolated
    assert items[0].first == 5 and items[0].length == 5
    with pytest.raises(InputError, match="two rows at frame 6"):
        split_tracks(pd.concat([df, df.iloc[[1]]]))
    with pytest.raises(InputError, match="track_id"):
        split_tracks(df.drop(columns="track_id"))
    with pytest.raises(InputError, match="NaN"):
        split_tracks(df.assign(y=[0.0, np.nan, 1.0, 2.0]))


def test_analyze_tables_and_accuracy(model):
    df = pd.concat([_brownian(12, 120, 0.5, 0), _trapped(60, 1)], ignore_index=True)
    res = analyze_tracks(df, model=model, extras=False)
    f, s = res.frames, res.segments
    assert len(f) == len(df) and list(f.columns[:7]) == ["track_id", "frame", "alpha", "K", "state", "cp_prob",
                                                          "segment"]
    assert set(s.columns) >= {"track_id", "start", "end", "alpha", "K", "state", "ensemble_state"}
    free = f[f.track_id != 100]
    assert abs(np.median(free.alpha) - 1.0) < 0.15 and abs(np.log(np.median(free.K) / 0.5)) < 0.3
    assert (free.state == 2).mean() > 0.95
    trap = s[s.track_id == 100].sort_values("start")
    assert trap.state.iloc[-1] == 0 and trap.alpha.iloc[-1] == 0 and trap.K.iloc[-1] == 0
    assert abs(int(trap.start.iloc[-1]) - 60) <= 3  # the change point near frame 60
    ens = res.ensemble
    assert ens.immobile.any() and ens.fraction.sum() == pytest.approx(1.0)
    rows = andi_rows(res)
    idx, lab = SegmentLabels.from_row(rows[-1])
    assert idx == 100 and lab.length == 120 and lab.state[-1] == 0


def test_analyze_beats_the_msd_baseline_on_short_tracks(model):
    df = _brownian(40, 30, 1.0, 5)
    res = analyze_tracks(df, model=model, extras=False)
    truth, pred, base = {}, {}, {}
    for t, seg in zip(res.tracks, res.track_segments):
        tid = int(t.track_id)
        truth[tid] = SegmentLabels([], t.length, [1.0], [1.0], [2])
        pred[tid] = SegmentLabels(seg.change_points, t.length, seg.alpha, seg.K, seg.state)
        a, k = msd_fit(t.positions)
        base[tid] = SegmentLabels([], t.length, [a], [k], [2])
    ours, naive = single_trajectory_scores(truth, pred), single_trajectory_scores(truth, base)
    assert ours.alpha_mae < naive.alpha_mae and ours.state_f1 >= 0.9


def test_units_and_gaps(model):
    df = _brownian(3, 50, 1.0, 2, first=10)
    df = df[df.frame != 20].reset_index(drop=True)  # a gap in every track
    px = analyze_tracks(df, model=model, extras=False)
    um = analyze_tracks(df, model=model, extras=False, pixel_size=0.1, frame_interval=0.05)
    assert len(px.frames) == len(df) and 20 not in set(px.frames.frame)
    assert px.K_unit == "px^2/frame^alpha" and um.K_unit == "um^2/s^alpha"
    expected = px.frames.K * 0.01 / 0.05 ** px.frames.alpha
    np.testing.assert_allclose(um.frames.K, expected, rtol=1e-9)
    assert andi_rows(px)[0][-1] == 50  # T counts frames from the first point, gap included
    with pytest.raises(InputError, match="pixel_size"):
        analyze_tracks(df, model=model, pixel_size=-1)


def test_write_analysis_and_andi_files(model, tmp_path):
    df = pd.concat([_brownian(4, 60, 1.0, 3), _trapped(40, 4)], ignore_index=True)
    res = analyze_tracks(df, model=model, extras=False)
    paths = write_analysis(res, tmp_path / "out", andi=True, fov=3)
    names = sorted(p.name for p in paths)
    assert names == ["ensemble.csv", "ensemble_labels.txt", "fov_3.txt", "frames.csv", "segments.csv", "units.txt"]
    lines = (tmp_path / "out" / "andi" / "fov_3.txt").read_text().splitlines()
    assert len(lines) == 5
    for line in lines:
        values = [float(v) for v in line.split(",")]
        idx, lab = SegmentLabels.from_row(values)
        assert lab.length == (80 if idx == 100 else 60)
    ens = (tmp_path / "out" / "andi" / "ensemble_labels.txt").read_text().splitlines()
    assert ens[0].startswith("model: ") and "; num_state: " in ens[0]
    m = np.array([[float(v) for v in row.split(";")] for row in ens[1:]])
    assert m.shape == (5, int(ens[0].split(":")[-1]))
    bad = df.assign(track_id=df.track_id.astype(str) + "a")
    with pytest.raises(InputError, match="whole-number track ids"):
        andi_rows(analyze_tracks(bad, model=model, extras=False))


def test_cli_analyze(tmp_path, capsys):
    src = tmp_path / "tracks.csv"
    _brownian(5, 40, 1.0, 6).to_csv(src, index=False)
    out = tmp_path / "res"
    assert main(["analyze", str(src), "--out", str(out), "--format", "andi", "--pixel-size", "0.1"]) == 0
    frames = pd.read_csv(out / "frames.csv")
    assert len(frames) == 200 and (out / "andi" / "fov_0.txt").exists()
    assert "um^2/frame^alpha" in (out / "units.txt").read_text()
    pd.DataFrame({"frame": [0], "y": [0.0], "x": [0.0]}).to_csv(tmp_path / "bad.csv", index=False)
    assert main(["analyze", str(tmp_path / "bad.csv"), "--out", str(out)]) == 2
    assert "track_id" in capsys.readouterr().err
    assert main(["analyze", str(src), "--out", str(out), "--models", str(tmp_path)]) == 2


def test_motion_estimator_streams(model):
    est = MotionEstimator(model=model, window=80)
    df = _trapped(50, 8)
    out = [est.update(100, int(r.frame), r.y, r.x) for r in df.itertuples() if r.frame != 30]
    assert np.isnan(out[0].alpha) and out[0].state == -1
    last = out[-1]
    assert last.n_points == 80 and last.frame == 99 and last.state == 0 and last.K == 0
    assert 45 <= last.segment_start <= 55
    assert len(est.estimates()) == 1
    with pytest.raises(InputError, match="does not follow"):
        est.update(100, 99, 0.0, 0.0)
    est.drop(100)
    assert est.track_ids() == []
    with pytest.raises(ModelError):
        MotionEstimator(folder="/nonexistent-folder")


def test_paired_fraction_finds_bound_pairs():
    from edgetrack.runtime.motion.analyze import paired_fraction
    from edgetrack.runtime.motion.segments import TrackSegments

    rng = np.random.default_rng(9)
    walk = np.cumsum(rng.normal(0, 1.0, (60, 2)), axis=0) + 50.0
    partner = walk.copy()
    partner[:30] += 40.0  # far away for 30 frames, then bound (0.5 px apart)
    partner[30:] += 0.5
    alone = walk + 80.0
    df = pd.concat([pd.DataFrame({"track_id": i, "frame": np.arange(60), "y": p[:, 0], "x": p[:, 1]})
                    for i, p in enumerate((walk, partner, alone))], ignore_index=True)
    items = split_tracks(df)

    def segs(bounds):
        b = np.array(bounds)
        return TrackSegments(b[1:-1], np.zeros(60, int), np.ones(b.size - 1), np.ones(b.size - 1),
                             np.full(b.size - 1, 2), b[:-1], b[1:] - 1, np.zeros((b.size - 1, 4)))

    out = paired_fraction(items, [segs([0, 30, 60]), segs([0, 60]), segs([0, 60])], distance=2.0)
    np.testing.assert_allclose(out, [0.0, 1.0, 0.5, 0.0])


def test_extras_keep_our_columns(model):
    df = _brownian(4, 40, 1.0, 11)
    res = analyze_tracks(df, model=model)  # DeepSPT and fingerprints when installed, else notes
    cols = list(res.segments.columns)
    assert cols[:7] == ["track_id", "start", "end", "n_frames", "alpha", "K", "state"]
    assert not any(c.endswith(("_x", "_y")) for c in cols)
    has_prints = len(cols) > 9
    assert has_prints or any("fingerprint" in n for n in res.notes)
    assert len(res.frames) == len(df)


def test_motion_estimator_frame_batches_match_single_updates(model):
    rng = np.random.default_rng(12)
    walks = {tid: np.cumsum(rng.normal(0, 1.0, (30, 2)), axis=0) for tid in ("a", "b", "c")}
    one, many = MotionEstimator(model=model, window=50), MotionEstimator(model=model, window=50)
    for f in range(30):
        singles = [one.update(t, f, *walks[t][f]) for t in walks]
        batch = many.update_frame(f, list(walks), [walks[t][f, 0] for t in walks], [walks[t][f, 1] for t in walks])
        for a, b in zip(singles, batch):
            assert a.track_id == b.track_id and a.state == b.state and a.segment_start == b.segment_start
            assert (np.isnan(a.alpha) and np.isnan(b.alpha)) or abs(a.alpha - b.alpha) < 1e-4
    assert len(many.estimates()) == 3
    with pytest.raises(InputError, match="twice"):
        many.update_frame(30, ["a", "a"], [0.0, 0.0], [0.0, 0.0])
