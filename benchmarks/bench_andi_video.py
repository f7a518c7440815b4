"""End to end on the 2nd AnDi Challenge's own videos: ``edgetrack track``, then ``edgetrack analyze --vip
--format andi``, scored by the challenge's scorer (issue 18).

    python benchmarks/bench_andi_video.py --andi-python /tmp/andi/bin/python --work /tmp/andi-bench \\
        [--fovs 2] [--seed 11] [--track-option motion=adaptive --track-option max_distance=10]

The challenge's generator and video renderer (``andi_datasets.datasets_challenge.challenge_phenom_dataset``
with ``get_video=True``, 10 VIPs per field of view, rendered by deeptrack 1.7) and its scorer
(``andi_datasets.utils_challenge.run_single_task``, track 1: videos) run in a separate interpreter
(``--andi-python``), because andi-datasets pins numpy <= 1.26 and deeptrack 1.7 installs only without its
dependencies. A working recipe (2026-12-03)::

    python3 -m venv /tmp/andi && /tmp/andi/bin/pip install "setuptools<70" wheel
    /tmp/andi/bin/pip install --no-deps andi-datasets==2.1.13 deeptrack==1.7.0
    /tmp/andi/bin/pip install "numpy<=1.26.4" "scipy<1.14" "scikit-image<0.23" "numba<0.61" "pint<0.20" \\
        "pandas<2.3" "scikit-learn<1.6" stochastic==0.6.0 lazy_import h5py matplotlib tqdm imageio ipython

One experiment per model (the five phenomenological models, the challenge's default parameters with 100
particles, 200 frames, a 128 x 128 px field of view), ``--fovs`` fields of view each. Per field of view
the first frame of the video (the VIP label frame) goes to ``--vip`` and the other 200 frames are tracked
(``edgetrack.track`` with the ``--track-option`` values), then analysed with the shipped models. Printed:
VIPs matched to a track, the challenge's metrics averaged over the experiments (weighted by VIP count,
as the challenge does) and per model, and the seconds per stage. Nothing is downloaded; the data are
rendered here.

``--tracks-from truth [--truth-noise PX]`` skips the tracking: the challenge's own trajectories (in the video's
pixels, with optional Gaussian localisation noise) go to ``analyze``, the ceiling that tracking is measured
against.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

MODELS = ("single_state", "multi_state", "immobile_traps", "dimerization", "confinement")

_GENERATE = r"""
import sys, numpy as np
from pathlib import Path
from andi_datasets.datasets_challenge import challenge_phenom_dataset, _get_dic_andi2
seed, n_fovs, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
np.random.seed(seed)
dics = []
for m in range(1, 6):
    d = _get_dic_andi2(m)
    d["N"] = 100
    dics.append(d)
Path(out).mkdir(parents=True, exist_ok=True)
challenge_phenom_dataset(dics=dics, num_fovs=n_fovs, save_data=True, path=out + "/", return_timestep_labs=True,
                         get_video=True, num_vip=10, files_reorg=False)
"""

_SCORE = r"""
import json, sys
from andi_datasets.utils_challenge import run_single_task
submit, truth, exps = sys.argv[1], sys.argv[2], [int(e) for e in sys.argv[3].split(",")]
avg, per = run_single_task(exps, 1, submit, truth)
print(json.dumps({"average": [float(v) for v in avg], "per_experiment": per.to_dict(orient="list")}))
"""


def _read_video(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(the VIP label frame (H, W) uint8, the movie (T, H, W) uint8) of one challenge video."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        pages = [np.squeeze(p.asarray()) for p in tif.pages]
    return pages[0], np.stack(pages[1:])


def _true_tracks(trajs: pd.DataFrame, movie: np.ndarray, noise: float, seed: int) -> pd.DataFrame:
    """The challenge's own trajectories as a track table in the video's pixels (``--tracks-from truth``): the
    video is an integer crop of the simulated box, found as the shift that puts the most true first-frame
    positions within 1.5 px of a detection; plus Gaussian noise of ``noise`` px per axis."""
    from scipy.spatial import cKDTree

    import edgetrack

    first = trajs[trajs["frame"] == 0][["x", "y"]].to_numpy()
    spots = edgetrack.locate(movie[0])[["y", "x"]].to_numpy()
    shifts, counts = np.unique(np.round((spots[:, None] - first[None]).reshape(-1, 2)), axis=0, return_counts=True)
    shift = shifts[counts.argmax()]
    rows, cols = trajs["x"].to_numpy() + shift[0], trajs["y"].to_numpy() + shift[1]
    hits = (cKDTree(spots).query(first + shift)[0] < 1.5).mean()
    if hits < 0.5:
        raise SystemExit(f"--tracks-from truth: only {hits:.0%} of the true positions fall on a detection")
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"frame": trajs["frame"].astype(np.int64), "y": rows + rng.normal(0, noise, len(rows)),
                          "x": cols + rng.normal(0, noise, len(cols)), "track_id": trajs["traj_idx"].astype(np.int64)})
    h, w = movie.shape[1:]
    inside = (table["y"] >= 0) & (table["y"] < h) & (table["x"] >= 0) & (table["x"] < w) & (table["frame"] < len(movie))
    return table[inside].sort_values(["frame", "track_id"]).reset_index(drop=True)


def _aligned_labels(trajs: pd.DataFrame, labels_text: str) -> str:
    """The challenge's per-trajectory labels with each row under the index its trajectory has in the CSV and
    the video. andi-datasets 2.1.13 writes ``traj_labs_*.txt`` before it moves the VIPs to indices
    0 .. num_vip - 1 (``challenge_phenom_dataset``, ``get_video=True``): its row ``k`` is the ``k``-th
    trajectory of the CSV in row order, whatever index the CSV now gives it. Scored as written, VIP ``i``
    would be compared with another particle's labels."""
    order = pd.unique(trajs["traj_idx"]).astype(np.int64)  # the k-th trajectory in row order: old index k
    lines = [line for line in labels_text.splitlines() if line.strip()]
    if len(lines) != len(order):
        raise SystemExit(f"{len(lines)} label rows for {len(order)} trajectories: not the layout this was written for")
    rows = []
    for k, line in enumerate(lines):
        head, _, rest = line.partition(",")
        if int(float(head)) != k:
            raise SystemExit(f"label row {k} is numbered {head}: not the layout this was written for")
        rows.append((int(order[k]), f"{int(order[k])},{rest}"))
    return "\n".join(text for _, text in sorted(rows)) + "\n"


def _option(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--andi-python", required=True, help="an interpreter with andi-datasets and deeptrack 1.7")
    parser.add_argument("--work", type=Path, required=True, help="folder for the rendered data and the results")
    parser.add_argument("--fovs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--track-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of edgetrack.track (repeatable), e.g. motion=adaptive")
    parser.add_argument("--tracks-from", choices=("video", "truth"), default="video",
                        help="'truth': analyse the challenge's own trajectories instead of tracking the video "
                             "(the ceiling of the analysis; --truth-noise adds localisation noise)")
    parser.add_argument("--truth-noise", type=float, default=0.0, metavar="PX",
                        help="Gaussian noise added to each true position, px per axis (with --tracks-from truth)")
    parser.add_argument("--labels-as-written", action="store_true",
                        help="score against traj_labs as andi-datasets writes them (misnumbered for the VIPs; "
                             "see _aligned_labels), as this benchmark did before 2026-12-03")
    parser.add_argument("--label", default=None, help="name of this run's results folder (default from the options)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import tifffile

    import edgetrack
    from edgetrack.runtime.cli.app import main as cli

    raw = args.work / f"raw_seed{args.seed}_fovs{args.fovs}"
    start = time.perf_counter()
    if not (raw / f"videos_exp_4_fov_{args.fovs - 1}.tiff").exists():
        subprocess.run([args.andi_python, "-c", _GENERATE, str(args.seed), str(args.fovs), str(raw)], check=True,
                       stdout=subprocess.DEVNULL)
    render_s = time.perf_counter() - start
    options = dict(_option(t) for t in args.track_option)
    label = args.label or ("defaults" if not options else "_".join(f"{k}-{v}" for k, v in options.items()))
    if args.tracks_from == "truth":
        label = args.label or f"truth-noise-{args.truth_noise:g}"
    run = args.work / label / f"seed{args.seed}"
    submit, truth = run / "submit", run / "truth"
    matched, vips, n_tracks, short = 0, 0, 0, 0
    track_s = analyze_s = 0.0
    for exp in range(5):
        (submit / "track_1" / f"exp_{exp}").mkdir(parents=True, exist_ok=True)
        (truth / "track_1" / f"exp_{exp}").mkdir(parents=True, exist_ok=True)
        for fov in range(args.fovs):
            work = run / f"exp_{exp}_fov_{fov}"
            work.mkdir(parents=True, exist_ok=True)
            vip_frame, movie = _read_video(raw / f"videos_exp_{exp}_fov_{fov}.tiff")
            tifffile.imwrite(work / "vip.tif", vip_frame)
            t0 = time.perf_counter()
            if args.tracks_from == "truth":
                tracks = _true_tracks(pd.read_csv(raw / f"trajs_exp_{exp}_fov_{fov}.csv"), movie, args.truth_noise,
                                      seed=100 * exp + fov)
            else:
                tracks = edgetrack.track(movie, **options)
            track_s += time.perf_counter() - t0
            tracks.to_csv(work / "tracks.csv", index=False)
            lengths = tracks.groupby("track_id").size()
            n_tracks += len(lengths)
            short += int((lengths < 3).sum())
            t0 = time.perf_counter()
            code = cli(["analyze", str(work / "tracks.csv"), "--out", str(work / "analysis"), "--format", "andi",
                        "--fov", str(fov), "--vip", str(work / "vip.tif"), "--quiet"])
            analyze_s += time.perf_counter() - t0
            if code != 0:
                raise SystemExit(f"analyze failed on exp {exp} fov {fov}")
            match = pd.read_csv(work / "analysis" / "vip.csv")
            vips += len(match)
            matched += int((match["track_id"] >= 0).sum())
            (submit / "track_1" / f"exp_{exp}" / f"fov_{fov}.txt").write_text(
                (work / "analysis" / "andi" / f"fov_{fov}.txt").read_text())
            labels = (raw / f"traj_labs_exp_{exp}_fov_{fov}.txt").read_text()
            if not args.labels_as_written:
                labels = _aligned_labels(pd.read_csv(raw / f"trajs_exp_{exp}_fov_{fov}.csv"), labels)
            (truth / "track_1" / f"exp_{exp}" / f"traj_labs_fov_{fov}.txt").write_text(labels)
            (truth / "track_1" / f"exp_{exp}" / f"vip_idx_fov_{fov}.txt").write_text(
                (raw / f"vip_idx_exp_{exp}_fov_{fov}.txt").read_text())
    scored = subprocess.run([args.andi_python, "-c", _SCORE, str(submit), str(truth), "0,1,2,3,4"], check=True,
                            capture_output=True, text=True)
    scores = json.loads(scored.stdout.strip().splitlines()[-1])
    rmse_cp, jsc, alpha, k, state = scores["average"]
    print(f"{label}, seed {args.seed}, {args.fovs} FOVs per model: VIPs matched {matched}/{vips}; tracks {n_tracks}, "
          f"{short} under 3 points")
    print(f"| {label} | {matched}/{vips} | {alpha:.3f} | {k:.3f} | {state:.3f} | {jsc:.3f} | {rmse_cp:.2f} |")
    per = pd.DataFrame(scores["per_experiment"])
    per["model"] = [MODELS[int(e)] for e in per["Exp"]]
    print(per.to_string(index=False))
    print(f"seconds: render {render_s:.0f}, track {track_s:.1f}, analyze {analyze_s:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"label": label, "seed": args.seed, "fovs": args.fovs,
                                               "vips_matched": matched, "vips": vips, "tracks": n_tracks,
                                               "short_tracks": short, "scores": scores}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
