"""psf_sigma="auto": the spot width measured on the frame, in the detector, the tracker, the CLI and batch."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import edgetrack
from edgetrack.runtime.detect.psf import AUTO, estimate_psf_sigma, settled_sigma, split_auto
from edgetrack.runtime.errors import ConfigError, DegradedWarning, InputError
from edgetrack.runtime.metrics.links import link_metrics
from edgetrack.runtime.simulate.spots import simulate_movie
from edgetrack.runtime.stream.checkpoint import load_checkpoint, save_checkpoint
from edgetrack.runtime.stream.pipeline import track_frames
from edgetrack.runtime.stream.tracker import PSF_TRIES, Tracker


def _movie(sigma: float, *, n_frames: int = 3, n_spots: int = 60, seed: int = 1, shape=(192, 192)):
    return simulate_movie(n_frames=n_frames, shape=shape, n_spots=n_spots, snr=6.0, psf_sigma=sigma,
                          D_range=(1.0, 1.0), seed=seed)


@pytest.mark.parametrize("sigma", [0.8, 1.0, 1.5, 2.5])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_estimate_is_the_rendered_width_from_any_first_guess(sigma, seed):
    movie, _ = _movie(sigma, seed=seed)
    estimate = estimate_psf_sigma(movie[0])
    assert estimate.sigma == pytest.approx(sigma, rel=0.06)
    assert estimate.n_spots >= 20 and estimate.spread < 0.5 * sigma
    # the first guess is only where it starts: one half as wide or 60% wider ends at the same width
    for guess in (0.5 * sigma, 1.6 * sigma):
        far = estimate_psf_sigma(movie[0], edgetrack.runtime.detect.config.DetectConfig(psf_sigma=guess))
        assert far.sigma == pytest.approx(sigma, rel=0.08)


def test_a_frame_without_isolated_spots_is_refused_by_name():
    with pytest.raises(InputError, match=r"only 0 isolated spots.*give psf_sigma"):
        estimate_psf_sigma(np.full((64, 64), 100.0) + np.random.default_rng(0).normal(0, 1, (64, 64)))


def test_a_width_near_the_first_guess_keeps_the_guess():
    assert settled_sigma(1.72, 1.5) == 1.5 and settled_sigma(1.2, 1.5) == 1.5  # within 20 %
    assert settled_sigma(0.81234, 1.5) == 0.8123 and settled_sigma(1.9, 1.5) == 1.9
    movie, _ = _movie(1.5, n_frames=6, n_spots=80, seed=2)
    tracker = Tracker(detect={"psf_sigma": AUTO})
    tracker.measure_psf(movie[0])
    assert tracker.psf_estimate.sigma != 1.5 and tracker.detect_config.psf_sigma == 1.5
    pd.testing.assert_frame_equal(edgetrack.track(movie), edgetrack.track(movie, detect={"psf_sigma": 1.5}))


def test_split_auto_keeps_the_other_options():
    assert split_auto({"psf_sigma": "Auto", "threshold": 5.0}) == ({"threshold": 5.0}, True)
    assert split_auto({"psf_sigma": 1.0}) == ({"psf_sigma": 1.0}, False)
    assert split_auto(None) == (None, False)


def test_track_measures_the_width_by_default_and_finds_the_close_pairs_a_fixed_guess_merges():
    movie, truth = _movie(1.0, n_frames=20, n_spots=150, seed=5)
    fixed = edgetrack.track(movie, detect={"psf_sigma": 1.5})
    auto = edgetrack.track(movie)  # the default: measured
    f_fixed = link_metrics(truth, fixed, max_distance=2.0)["f1"]
    f_auto = link_metrics(truth, auto, max_distance=2.0)["f1"]
    assert f_auto > f_fixed + 0.03, (f_fixed, f_auto)
    assert len(auto) > len(fixed)
    # asking for it is the same as the default; a diameter still sets the width as before
    pd.testing.assert_frame_equal(edgetrack.track(movie, detect={"psf_sigma": "auto"}), auto)
    pd.testing.assert_frame_equal(edgetrack.track(movie, diameter=6.0), fixed)


def test_the_tracker_settles_on_its_first_frame_and_the_pipeline_matches_push_by_push():
    movie, _ = _movie(1.0, n_frames=12, n_spots=80, seed=3)
    pushed = Tracker(detect={"psf_sigma": AUTO})
    assert pushed.psf_tries == PSF_TRIES and pushed.detect_config.psf_sigma == 1.5
    for frame in movie:
        pushed.push(frame)
    pushed.flush()
    assert pushed.psf_tries == 0 and pushed.psf_estimate is not None
    assert pushed.detect_config.psf_sigma == pytest.approx(1.0, rel=0.06)
    assert pushed.detect_config.psf_sigma == round(estimate_psf_sigma(movie[0]).sigma, 4)
    piped = Tracker(detect={"psf_sigma": AUTO})
    for _ in track_frames(piped, iter(movie), prefetch=4, workers=2):
        pass
    pd.testing.assert_frame_equal(piped.finish(), pushed.finish())


def test_empty_frames_use_up_tries_then_the_default_stays_with_a_warning():
    movie, _ = _movie(1.0, n_frames=4, n_spots=80, seed=2)
    blank = np.full(movie.shape[1:], float(np.median(movie[0])))
    tracker = Tracker(detect={"psf_sigma": AUTO})
    tracker.push(blank)
    tracker.push(blank)
    assert tracker.psf_tries == PSF_TRIES - 2 and tracker.psf_estimate is None
    tracker.push(movie[0])  # the first frame with spots settles it
    assert tracker.psf_tries == 0 and tracker.detect_config.psf_sigma == pytest.approx(1.0, rel=0.06)

    hopeless = Tracker(detect={"psf_sigma": AUTO})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(PSF_TRIES + 2):
            hopeless.push(blank)
    messages = [str(w.message) for w in caught if "psf_sigma" in str(w.message)]
    assert len(messages) == 1 and f"these {PSF_TRIES} frames" in messages[0] and "keeps psf_sigma 1.5" in messages[0]
    assert caught[-1].category is DegradedWarning
    assert hopeless.psf_tries == 0 and hopeless.detect_config.psf_sigma == 1.5


def test_a_sparse_movie_is_measured_on_its_first_frames_pooled(tmp_path):
    movie, _ = _movie(1.0, n_frames=12, n_spots=5, seed=9, shape=(96, 96))
    with pytest.raises(InputError, match="isolated spots could be measured in this 96x96 frame"):
        estimate_psf_sigma(movie[0])
    pooled = estimate_psf_sigma(movie[:6])
    assert pooled.sigma == pytest.approx(1.0, rel=0.08) and pooled.n_spots >= 8
    straight = Tracker(detect={"psf_sigma": AUTO})
    for frame in movie:
        straight.push(frame)
    straight.flush()
    settled_after = PSF_TRIES - straight.psf_tries
    assert straight.psf_estimate is not None and straight.detect_config.psf_sigma == pytest.approx(1.0, rel=0.08)
    # stopped while pending: the frames tried so far travel in the checkpoint, so the resumed run is the same
    stopped = Tracker(detect={"psf_sigma": AUTO})
    stopped.push(movie[0])
    assert stopped.psf_tries == PSF_TRIES - 1
    save_checkpoint(stopped, tmp_path / "pending.npz")
    resumed = load_checkpoint(tmp_path / "pending.npz")
    assert resumed.psf_tries == PSF_TRIES - 1
    for frame in movie[1:]:
        resumed.push(frame)
    resumed.flush()
    assert resumed.detect_config.psf_sigma == straight.detect_config.psf_sigma
    pd.testing.assert_frame_equal(resumed.finish(), straight.finish())
    assert settled_after >= 1


def test_a_checkpoint_keeps_a_pending_auto_and_a_measured_sigma(tmp_path):
    movie, _ = _movie(1.0, n_frames=8, n_spots=80, seed=4)
    blank = np.full(movie.shape[1:], float(np.median(movie[0])))
    straight = Tracker(detect={"psf_sigma": AUTO})
    for frame in [blank, *movie]:
        straight.push(frame)
    straight.flush()

    pending = Tracker(detect={"psf_sigma": AUTO})
    pending.push(blank)
    save_checkpoint(pending, tmp_path / "pending.npz")
    resumed = load_checkpoint(tmp_path / "pending.npz")
    assert resumed.psf_tries == PSF_TRIES - 1  # still "auto", with the frame tried so far
    for frame in movie[:3]:
        resumed.push(frame)
    assert resumed.psf_tries == 0
    save_checkpoint(resumed, tmp_path / "settled.npz")
    settled = load_checkpoint(tmp_path / "settled.npz")
    assert settled.psf_tries == 0 and settled.detect_config.psf_sigma == straight.detect_config.psf_sigma
    for frame in movie[3:]:
        settled.push(frame)
    settled.flush()
    pd.testing.assert_frame_equal(settled.finish(), straight.finish())


def test_auto_is_2d_only():
    with pytest.raises(ConfigError, match="2-D spots"):
        Tracker(ndim=3, detect={"psf_sigma": AUTO})


def test_locate_measures_on_the_first_frame():
    movie, _ = _movie(1.0, n_frames=2, n_spots=80, seed=6)
    auto = edgetrack.locate(movie, psf_sigma="auto")
    sigma = round(estimate_psf_sigma(movie[0]).sigma, 4)
    pd.testing.assert_frame_equal(auto, edgetrack.locate(movie, psf_sigma=sigma))


def test_batch_chunks_detect_with_the_sigma_of_the_whole_run(tmp_path):
    from edgetrack.runtime.batch.run import _parameters
    from edgetrack.runtime.batch.tasks import detect_chunk

    movie, _ = _movie(1.0, n_frames=9, n_spots=80, seed=7)
    path = tmp_path / "movie.npy"
    np.save(path, movie)
    params = _parameters({}, {"psf_sigma": "auto"}, False, None, None)
    assert params["detect"]["psf_sigma"] == AUTO
    job = {"input": str(path), "name": "movie", "tracker": params["tracker"], "detect": params["detect"]}
    whole = Tracker(detect={"psf_sigma": AUTO})
    expected = [whole.detect(frame) for frame in movie]
    chunks = detect_chunk(job, 0, 4) + detect_chunk(job, 4, 9)
    assert len(chunks) == 9
    for (shape, spots), want in zip(chunks, expected):
        assert shape == movie.shape[1:]
        np.testing.assert_array_equal(spots, want)


def test_cli_track_measures_by_default_and_refuses_nonsense(tmp_path, capsys):
    from edgetrack.runtime.cli.app import main

    movie, _ = _movie(1.0, n_frames=6, n_spots=60, seed=8)
    path = str(tmp_path / "movie.npy")
    np.save(path, movie)
    assert main(["track", path, "--out", str(tmp_path / "auto.csv")]) == 0
    err = capsys.readouterr().err
    sigma = round(estimate_psf_sigma(movie[0]).sigma, 3)
    assert f"spot sigma measured (--psf-sigma auto): {sigma:.3f} px" in err
    assert main(["track", path, "--out", str(tmp_path / "fixed.csv"), "--psf-sigma", "1.5"]) == 0
    assert "measured" not in capsys.readouterr().err
    auto = pd.read_csv(tmp_path / "auto.csv")
    assert len(auto) > len(pd.read_csv(tmp_path / "fixed.csv"))
    with pytest.raises(SystemExit) as stop:
        main(["track", path, "--out", str(tmp_path / "bad.csv"), "--psf-sigma", "wide"])
    assert stop.value.code == 2 and "expected a sigma in px or 'auto', got 'wide'" in capsys.readouterr().err
    assert main(["track", path, "--out", str(tmp_path / "z.csv"), "--ndim", "3", "--psf-sigma", "auto"]) == 2
    assert "measures 2-D spots" in capsys.readouterr().err
    assert not (tmp_path / "bad.csv").exists() and not (tmp_path / "z.csv").exists()
    blank = np.full((PSF_TRIES + 2, 64, 64), 100, np.uint16)
    np.save(tmp_path / "blank.npy", blank)
    assert main(["track", str(tmp_path / "blank.npy"), "--out", str(tmp_path / "blank.csv"), "--quiet"]) == 0
    lines = capsys.readouterr().err.splitlines()  # one line that says what happened, no Python warning dump
    assert len(lines) == 1 and lines[0].startswith("edgetrack track: warning: psf_sigma='auto': only 0 isolated")
