"""``edgetrack simulate --out DIR``: write a simulated spot movie and its ground truth."""

from __future__ import annotations

import argparse
import math

HELP = "Simulate a spot movie with known ground truth (DIR/movie.tif, DIR/truth.csv)."


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    parser.add_argument("--frames", type=int, default=100, help="number of frames (default 100)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--shape", type=int, nargs=2, metavar=("H", "W"), help="frame size in px, rows cols (default 512 512)")
    size.add_argument("--size", type=int, metavar="N", help="square frames of N x N px")
    parser.add_argument("--spots", type=float, default=500, help="mean number of particles in view per frame (default 500)")
    parser.add_argument("--snr", type=float, default=10.0, help="peak amplitude / background noise std (default 10)")
    parser.add_argument("--D-min", dest="d_min", type=float, default=0.5, help="smallest diffusion coefficient, px^2/frame (default 0.5)")
    parser.add_argument("--D-max", dest="d_max", type=float, default=2.0, help="largest diffusion coefficient, px^2/frame (default 2.0)")
    parser.add_argument("--psf-sigma", type=float, default=1.5, help="Gaussian PSF standard deviation, px (default 1.5)")
    parser.add_argument("--lifetime", type=float, default=100.0, help="mean particle lifetime, frames; 'inf' = never (default 100)")
    parser.add_argument(
        "--blink", type=_probability, default=0.0, metavar="P_OFF",
        help="per-frame probability that an emitter goes dark (default 0); dark ones return with probability 0.5",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import tifffile

    from edgetrack.runtime.io.atomic import atomic_open
    from edgetrack.runtime.errors import OutputError
    from edgetrack.runtime.simulate.spots import SpotSimConfig, simulate_movie

    if args.shape is not None:
        shape = tuple(args.shape)
    elif args.size is not None:
        shape = (args.size, args.size)
    else:
        shape = (512, 512)
    config = SpotSimConfig.from_dict(
        n_frames=args.frames,
        shape=shape,
        n_spots=args.spots,
        snr=args.snr,
        D_range=(args.d_min, args.d_max),
        psf_sigma=args.psf_sigma,
        mean_lifetime=args.lifetime,
        p_blink_off=args.blink,
        seed=args.seed,
    )
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc.strerror or exc}") from None

    movie, truth = simulate_movie(config)
    movie_path = out / "movie.tif"
    truth_path = out / "truth.csv"
    with atomic_open(movie_path, "wb") as handle:
        tifffile.imwrite(handle, movie, imagej=True, metadata={"axes": "TYX"})
    with atomic_open(truth_path, "w", newline="") as handle:
        truth.to_csv(handle, index=False)
    lifetime = "inf" if math.isinf(config.mean_lifetime) else f"{config.mean_lifetime:g}"
    print(
        f"wrote {movie_path} ({movie.shape[0]} frames of {movie.shape[1]}x{movie.shape[2]} px, uint16) and "
        f"{truth_path} ({len(truth)} points, {truth['track_id'].nunique()} tracks; snr {config.snr:g}, "
        f"D {config.D_range[0]:g}-{config.D_range[1]:g} px^2/frame, lifetime {lifetime} frames, seed {config.seed})"
    )
    return 0
