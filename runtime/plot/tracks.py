"""Pictures of tracks: tracks over a frame, a map of a motion property, an animated overlay.

Everything here draws on matplotlib's object API (``Figure`` + the Agg canvas; no pyplot, no global
backend switch), imported when a function is called, so ``import edgetrack.runtime`` stays light.
Coordinates are px (``y`` = row, ``x`` = column, pixel centres at whole numbers); a scale bar in µm
is drawn when the pixel size is known.

- :func:`plot_tracks`: tracks drawn over one frame, one colour per track or coloured by a numeric
  column (a motion property such as ``alpha``, ``K``, ``state``), with a colour bar.
- :func:`plot_value_map`: the median of a per-point column (``alpha``, ``K``, ``D``) in square
  spatial bins: where in the field of view the particles move how.
- :func:`overlay_frames` + :func:`write_animation`: each frame with the recent part of every track
  drawn on it, written as GIF (Pillow) or MP4 (only when ``imageio-ffmpeg`` is installed).
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from edgetrack.runtime.io.atomic import atomic_path
from edgetrack.runtime.errors import InputError, OutputError
from edgetrack.runtime.io.ome import PhysicalUnits

_LABELS = {"alpha": "α (anomalous exponent)", "K": "K (px²/frame^α)", "D": "D (px²/frame)",
           "state": "diffusive state", "mode": "motion mode", "track_id": "track"}


def _mpl():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise OutputError("plotting needs matplotlib: pip install 'edgetrack[plot]'") from None
    return Figure, FigureCanvasAgg


def mp4_available() -> bool:
    """Whether MP4 can be written (the ``imageio-ffmpeg`` package with its ffmpeg binary)."""
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def robust_limits(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> tuple[float, float]:
    """Display range of an image: the ``low`` and ``high`` percentiles of its finite pixels."""
    values = np.asarray(image, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    step = max(1, values.size // 200_000)
    lo, hi = np.percentile(values[::step], [low, high])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def physical_column(table: pd.DataFrame, column: str, units: PhysicalUnits | None) -> tuple[np.ndarray, str]:
    """The values of ``column`` and their label, in µm and s where the units allow (D, K with alpha)."""
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    label = _LABELS.get(column, column)
    if units is not None and units.pixel_size_um and units.frame_interval_s:
        px2 = units.pixel_size_um ** 2
        if column == "D":
            return values * px2 / units.frame_interval_s, "D (µm²/s)"
        if column == "K" and "alpha" in table.columns:
            alpha = pd.to_numeric(table["alpha"], errors="coerce").to_numpy(dtype=np.float64)
            return values * px2 / units.frame_interval_s ** alpha, "K (µm²/s^α)"
    return values, label


def _sorted_tracks(tracks: pd.DataFrame, min_length: int) -> pd.DataFrame:
    missing = [c for c in ("frame", "y", "x", "track_id") if c not in tracks.columns]
    if missing:
        raise InputError(f"tracks: missing column(s) {', '.join(missing)}")
    table = tracks[np.isfinite(pd.to_numeric(tracks["track_id"], errors="coerce").fillna(-1).to_numpy(float))
                   & (pd.to_numeric(tracks["track_id"], errors="coerce").fillna(-1) >= 0)]
    table = table.sort_values(["track_id", "frame"], kind="stable")
    if min_length > 1 and len(table):
        sizes = table.groupby("track_id")["frame"].transform("size")
        table = table[sizes.to_numpy() >= min_length]
    return table.reset_index(drop=True)


def _segments(table: pd.DataFrame, values: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Line segments (k, 2, 2) as (x, y) pairs between consecutive points of each track, their track ids and
    values (mean of the two ends)."""
    x = table["x"].to_numpy(dtype=np.float64)
    y = table["y"].to_numpy(dtype=np.float64)
    tid = table["track_id"].to_numpy()
    if len(tid) < 2:
        return np.zeros((0, 2, 2)), np.zeros(0, np.int64), None if values is None else np.zeros(0)
    same = tid[1:] == tid[:-1]
    start = np.stack([x[:-1], y[:-1]], axis=1)[same]
    end = np.stack([x[1:], y[1:]], axis=1)[same]
    seg_values = None if values is None else 0.5 * (values[:-1] + values[1:])[same]
    return np.stack([start, end], axis=1), tid[:-1][same], seg_values


def _track_colors(track_ids: np.ndarray) -> np.ndarray:
    """A stable, well-spread colour per track id (RGBA rows)."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    index = (np.asarray(track_ids, dtype=np.int64) * 7) % 20  # neighbouring ids get distant colours
    return cmap(index)


def _scale_bar(ax, width_px: float, units: PhysicalUnits | None, color: str = "white") -> None:
    if units is None or not units.pixel_size_um:
        return
    from matplotlib.patches import Rectangle

    target = width_px * units.pixel_size_um / 5.0
    exponent = math.floor(math.log10(target))
    length_um = min((m * 10.0 ** exponent for m in (1, 2, 5, 10)), key=lambda v: abs(v - target))
    length_px = length_um / units.pixel_size_um
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()  # y axis points down: y0 is the bottom edge
    height = abs(y0 - y1)
    left = x1 - 0.05 * (x1 - x0) - length_px
    bottom = y0 - 0.05 * height
    ax.add_patch(Rectangle((left, bottom - 0.012 * height), length_px, 0.012 * height, color=color, lw=0))
    label = f"{length_um:g} µm" if length_um >= 1 else f"{length_um * 1000:g} nm"
    ax.text(left + length_px / 2, bottom - 0.025 * height, label, color=color, ha="center", va="bottom", fontsize=9)


def plot_tracks(tracks: pd.DataFrame, image: np.ndarray | None = None, *, color_by: str = "track_id",
                units: PhysicalUnits | None = None, min_length: int = 2, title: str | None = None,
                shape: tuple[int, int] | None = None, linewidth: float = 1.0, dpi: int = 150):
    """Tracks over ``image`` (a 2-D frame; None = blank) as a matplotlib Figure.

    color_by: ``track_id`` (a colour per track) or a numeric column of ``tracks`` (colour bar).
    min_length: tracks with fewer points are not drawn. shape: (H, W) px when there is no image.
    """
    Figure, FigureCanvasAgg = _mpl()
    from matplotlib.collections import LineCollection

    table = _sorted_tracks(tracks, min_length)
    if color_by != "track_id" and color_by not in table.columns:
        raise InputError(f"cannot colour by '{color_by}': no such column (columns: {', '.join(map(str, tracks.columns))})")
    if image is not None:
        height, width = image.shape[:2]
    elif shape is not None:
        height, width = shape
    else:
        height = int(math.ceil(tracks["y"].max() + 1)) if len(tracks) else 1
        width = int(math.ceil(tracks["x"].max() + 1)) if len(tracks) else 1
    aspect = height / max(width, 1)
    fig = Figure(figsize=(7.5 + (1.2 if color_by != "track_id" else 0.0), 7.5 * aspect + 0.6), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if image is not None:
        vmin, vmax = robust_limits(image)
        ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, extent=(-0.5, width - 0.5, height - 0.5, -0.5),
                  interpolation="nearest")
    else:
        ax.set_facecolor("black")
    values = None
    label = None
    if color_by != "track_id":
        values, label = physical_column(table, color_by, units)
    segments, seg_ids, seg_values = _segments(table, values)
    if len(segments):
        if seg_values is None:
            lines = LineCollection(segments, colors=_track_colors(seg_ids), linewidths=linewidth)
        else:
            finite = seg_values[np.isfinite(seg_values)]
            lo, hi = (np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0))
            lines = LineCollection(segments, cmap="plasma", linewidths=linewidth * 1.3)
            lines.set_array(np.ma.masked_invalid(seg_values))
            lines.set_clim(float(lo), float(hi if hi > lo else lo + 1e-9))
            colorbar = fig.colorbar(lines, ax=ax, fraction=0.046, pad=0.02)
            colorbar.set_label(label)
        ax.add_collection(lines)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    _scale_bar(ax, width, units)
    n_tracks = table["track_id"].nunique() if len(table) else 0
    ax.set_title(title or f"{n_tracks} tracks of {min_length}+ points")
    fig.tight_layout()
    return fig


def value_grid(points: pd.DataFrame, column: str, shape: tuple[int, int], *, bin_px: float = 16.0,
               min_count: int = 3, units: PhysicalUnits | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Median of ``column`` per ``bin_px`` x ``bin_px`` square (px) over a field of view (H, W) = ``shape``.

    Returns (median float64 (ny, nx), NaN where fewer than ``min_count`` finite values; counts int64
    (ny, nx); the value label). Bin (i, j) covers y in [i, i + 1) * bin_px - 0.5 px, and likewise x;
    points just outside the frame count in the nearest border bin.
    """
    for name in ("y", "x", column):
        if name not in points.columns:
            raise InputError(f"map: missing column '{name}' (columns: {', '.join(map(str, points.columns))})")
    if bin_px <= 0:
        raise InputError(f"map bin size must be > 0 px, got {bin_px}")
    values, label = physical_column(points, column, units)
    y = points["y"].to_numpy(dtype=np.float64)
    x = points["x"].to_numpy(dtype=np.float64)
    height, width = shape
    ny, nx = max(1, int(math.ceil(height / bin_px))), max(1, int(math.ceil(width / bin_px)))
    ok = np.isfinite(values) & np.isfinite(y) & np.isfinite(x)
    # points a little outside the frame (sub-pixel fits at the border) count in the border bins
    iy = np.clip(np.floor((np.where(ok, y, 0.0) + 0.5) / bin_px), 0, ny - 1)
    ix = np.clip(np.floor((np.where(ok, x, 0.0) + 0.5) / bin_px), 0, nx - 1)
    grid = np.full((ny, nx), np.nan)
    counts = np.zeros((ny, nx), np.int64)
    if ok.any():
        frame = pd.DataFrame({"b": iy[ok].astype(np.int64) * nx + ix[ok].astype(np.int64), "v": values[ok]})
        stats = frame.groupby("b")["v"].agg(["median", "size"])
        keys = stats.index.to_numpy()
        counts.flat[keys] = stats["size"].to_numpy()
        keep = stats["size"].to_numpy() >= min_count
        grid.flat[keys[keep]] = stats["median"].to_numpy()[keep]
    return grid, counts, label


def plot_value_map(points: pd.DataFrame, column: str, shape: tuple[int, int], *, bin_px: float = 16.0,
                   min_count: int = 3, image: np.ndarray | None = None, units: PhysicalUnits | None = None,
                   title: str | None = None, dpi: int = 150):
    """A Figure of :func:`value_grid` (median of ``column`` per spatial bin), over ``image`` when given."""
    Figure, FigureCanvasAgg = _mpl()
    grid, _, label = value_grid(points, column, shape, bin_px=bin_px, min_count=min_count, units=units)
    height, width = shape
    ny, nx = grid.shape
    fig = Figure(figsize=(8.7, 7.5 * height / max(width, 1) + 0.6), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    extent = (-0.5, nx * bin_px - 0.5, ny * bin_px - 0.5, -0.5)
    if image is not None:
        vmin, vmax = robust_limits(image)
        ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    shown = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", extent=extent, interpolation="nearest",
                      alpha=0.85 if image is not None else 1.0)
    colorbar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    colorbar.set_label(f"median {label}")
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    _scale_bar(ax, width, units)
    n_bins = int(np.isfinite(grid).sum())
    ax.set_title(title or f"{column}: median per {bin_px:g} px bin ({n_bins} bins with ≥ {min_count} points)")
    fig.tight_layout()
    return fig


def save_figure(fig, out: str | os.PathLike[str]) -> Path:
    """Write a Figure atomically; the format follows the extension (.png, .svg, .pdf, .jpg)."""
    out = Path(out)
    fmt = out.suffix.lower().lstrip(".") or "png"
    with atomic_path(out) as tmp:
        try:
            fig.savefig(tmp, format=fmt)
        except ValueError as exc:
            raise OutputError(f"cannot write {out}: {exc}") from None
    return out


def overlay_frames(movie: Sequence[np.ndarray], tracks: pd.DataFrame, frames: Iterable[int], *,
                   color_by: str = "track_id", tail: int = 10, units: PhysicalUnits | None = None,
                   width_px: int = 512) -> Iterator[np.ndarray]:
    """RGB uint8 (h, w, 3) images: each frame with the last ``tail`` frames of every track drawn on it.

    ``movie[t]`` is read only for the frames asked for. ``width_px``: width of the rendered images
    (height follows the aspect ratio; both are multiples of 16, as video encoders prefer).
    """
    Figure, FigureCanvasAgg = _mpl()
    from matplotlib.collections import LineCollection

    table = _sorted_tracks(tracks, 1)
    if color_by != "track_id" and color_by not in table.columns:
        raise InputError(f"cannot colour by '{color_by}': no such column")
    values = None
    if color_by != "track_id":
        values, _ = physical_column(table, color_by, units)
        finite = values[np.isfinite(values)]
        clim = tuple(np.percentile(finite, [2, 98])) if finite.size else (0.0, 1.0)
    first = np.asarray(movie[0])
    height, width = first.shape[:2]
    out_w = max(16, int(round(width_px / 16)) * 16)
    out_h = max(16, int(round(out_w * height / width / 16)) * 16)
    dpi = 100
    fig = Figure(figsize=(out_w / dpi, out_h / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    vmin, vmax = robust_limits(first)
    shown = ax.imshow(first, cmap="gray", vmin=vmin, vmax=vmax, extent=(-0.5, width - 0.5, height - 0.5, -0.5),
                      interpolation="nearest", aspect="auto")
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    _scale_bar(ax, width, units)
    frame_col = table["frame"].to_numpy()
    text = ax.text(0.02, 0.97, "", transform=ax.transAxes, color="white", fontsize=10, va="top")
    lines = None
    dots = None
    for t in frames:
        shown.set_data(np.asarray(movie[t]))
        recent = table[(frame_col <= t) & (frame_col >= t - tail)]
        recent_values = None if values is None else values[(frame_col <= t) & (frame_col >= t - tail)]
        segments, seg_ids, seg_values = _segments(recent, recent_values)
        if lines is not None:
            lines.remove()
        if dots is not None:
            dots.remove()
        if seg_values is None:
            lines = LineCollection(segments, colors=_track_colors(seg_ids) if len(seg_ids) else None, linewidths=1.2)
        else:
            lines = LineCollection(segments, cmap="plasma", linewidths=1.4)
            lines.set_array(np.ma.masked_invalid(seg_values))
            lines.set_clim(*clim)
        ax.add_collection(lines)
        now = recent[recent["frame"].to_numpy() == t]
        colours = "yellow" if values is not None else (_track_colors(now["track_id"].to_numpy()) if len(now) else None)
        dots = ax.scatter(now["x"], now["y"], s=6, c=colours, linewidths=0)
        units_text = f"  {t * units.frame_interval_s:.2f} s" if units is not None and units.frame_interval_s else ""
        text.set_text(f"frame {t}{units_text}")
        canvas.draw()
        yield np.asarray(canvas.buffer_rgba())[..., :3].copy()


def write_animation(frames: Iterable[np.ndarray], out: str | os.PathLike[str], fps: float = 10.0) -> Path:
    """Write RGB frames as an animated GIF (Pillow) or MP4 (imageio-ffmpeg), atomically.

    Raises :class:`OutputError` for another extension, or for MP4 when imageio-ffmpeg is not installed.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if fps <= 0:
        raise InputError(f"fps must be > 0, got {fps}")
    if suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        if not images:
            raise InputError("no frames to animate")
        with atomic_path(out) as tmp:
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=max(20, int(round(1000.0 / fps))), loop=0)
        return out
    if suffix == ".mp4":
        if not mp4_available():
            raise OutputError(f"cannot write {out}: MP4 needs the imageio-ffmpeg package (pip install imageio-ffmpeg);"
                              " write a .gif instead")
        import imageio_ffmpeg

        iterator = iter(frames)
        try:
            first = next(iterator)
        except StopIteration:
            raise InputError("no frames to animate") from None
        h, w = first.shape[:2]
        with atomic_path(out) as tmp:
            writer = imageio_ffmpeg.write_frames(str(tmp), (w, h), fps=fps, codec="libx264", quality=7,
                                                 macro_block_size=16, output_params=["-f", "mp4"],
                                                 ffmpeg_log_level="error")
            writer.send(None)
            try:
                writer.send(np.ascontiguousarray(first))
                for frame in iterator:
                    writer.send(np.ascontiguousarray(frame))
            finally:
                writer.close()
        return out
    raise OutputError(f"cannot write {out}: animations are .gif or .mp4")
