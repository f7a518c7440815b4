"""Label masks in and out: Cell Tracking Challenge (CTC) folders, lineage files, result folders.

- :func:`open_masks` opens label masks lazily: a CTC folder (``maskTTT.tif`` of a result or a
  segmentation, ``man_trackTTT.tif`` of the ground-truth markers), any folder of 2-D TIFF/PNG files,
  a stacked TIFF, a ``.npy`` (T, H, W) file or an in-memory array. :func:`open_images` opens the raw
  images the same way (any dtype). 3-D label stacks over time: :func:`open_masks` takes a (T, Z, Y, X)
  array or a folder of 3-D TIFFs (a CTC 3-D result); :func:`open_masks_3d` and :func:`open_volumes` also
  open a (T, Z, Y, X) TIFF / OME-TIFF with a Z axis or ``.npy`` (through
  :func:`~edgetrack.runtime.io.stacks.open_stacks`). Relabelling, :func:`ctc_result` and
  :func:`write_ctc_result` work on either (3-D ``maskTTT.tif`` are (Z, Y, X) multi-page TIFFs).
- :func:`read_ctc_lineage` reads ``res_track.txt`` / ``man_track.txt`` (one line ``L B E P`` per track:
  label L is present from frame B to frame E inclusive, its parent track is P, 0 = none).
- :func:`write_ctc_result` writes a CTC result folder from a tracks table; :func:`ctc_from_tracks`
  (lineage) and :func:`ctc_result` (relabelled masks too) do the conversion in memory, for the
  metrics; :func:`read_ctc_result` reads a folder back.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import FileReadError, InputError, OutputError
from edgetrack.runtime.io.movie import Movie
from edgetrack.runtime.io.readers import check_numbering, natural_key, quiet_tifffile, open_movie
from edgetrack.runtime.io.stacks import Stacks, open_stacks
from edgetrack.runtime.io.tables import check_table

__all__ = ["Masks", "open_masks", "open_images", "open_masks_3d", "open_volumes", "read_ctc_lineage", "check_lineage", "ctc_from_tracks", "ctc_result",
           "relabel_frame", "write_ctc_result", "write_lineage", "read_ctc_result", "LINEAGE_COLUMNS"]

LINEAGE_COLUMNS = ("label", "start", "end", "parent")
_CTC_PATTERNS = (re.compile(r"^mask(\d+)\.tiff?$", re.I), re.compile(r"^man_track(\d+)\.tiff?$", re.I),
                 re.compile(r"^man_seg(\d+)\.tiff?$", re.I))
_IMAGE_PATTERN = re.compile(r"^t(\d+)\.tiff?$", re.I)
_LINEAGE_NAMES = ("res_track.txt", "man_track.txt")


# ----------------------------------------------------------------------------------------- reading

def _read_image_file(path: Path) -> np.ndarray:
    """One 2-D image from a TIFF (any codec imagecodecs reads: the CTC's are LZW) or PNG file."""
    if path.suffix.lower() == ".png":
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    import tifffile

    with quiet_tifffile():
        return tifffile.imread(str(path))


class Masks(Movie):
    """Label masks opened for lazy, frame-by-frame reading (see :func:`open_masks`).

    ``len(masks)`` frames of ``masks.frame_shape`` (H, W), or (Z, Y, X) for 3-D label stacks; ``masks[t]``
    is frame t as an integer array of that shape (0 = background); ``masks.frame_numbers`` are the numbers
    in the file names (0..T-1 when the source has none).
    """

    def __init__(self, movie: Movie, frame_numbers: np.ndarray | None = None) -> None:
        super().__init__(movie.source, len(movie), movie.frame_shape, movie._reader)
        self.frame_numbers = (np.arange(len(movie), dtype=np.int64) if frame_numbers is None
                              else np.asarray(frame_numbers, np.int64))

    def __getitem__(self, index: int) -> np.ndarray:
        frame = super().__getitem__(index)
        if frame.dtype == np.bool_:
            return frame.view(np.uint8)
        if frame.dtype.kind not in "iu":
            raise InputError(f"{self.source}: frame {index} holds {frame.dtype} values; label masks must hold "
                             "integers (0 = background)")
        return frame


def _numbered_files(folder: Path) -> tuple[list[Path], np.ndarray | None]:
    """The frame files of a folder: CTC mask names first, then raw CTC images, else every TIFF/PNG."""
    names = [p for p in folder.iterdir() if p.is_file()]
    for pattern in (*_CTC_PATTERNS, _IMAGE_PATTERN):
        hits = [(int(m.group(1)), p) for p in names if (m := pattern.match(p.name))]
        if hits:
            hits.sort()
            files = [p for _, p in hits]
            check_numbering(folder, files)
            return files, np.array([n for n, _ in hits], np.int64)
    files = sorted((p for p in names if p.suffix.lower() in (".tif", ".tiff", ".png")), key=natural_key)
    if not files:
        raise FileReadError(f"{folder}: no frames found (expected maskTTT.tif, man_trackTTT.tif or other TIFF/PNG files)")
    check_numbering(folder, files)
    return files, None


def _open_folder(folder: Path) -> tuple[Movie, np.ndarray | None]:
    files, numbers = _numbered_files(folder)

    def read(i: int) -> np.ndarray:
        try:
            return _read_image_file(files[i])
        except Exception as exc:
            raise FileReadError(f"{files[i]}: cannot read frame {i}: {exc}") from None

    first = np.asarray(read(0))
    if first.ndim not in (2, 3):
        raise InputError(f"{files[0]}: expected a 2-D frame or a 3-D (Z, Y, X) stack, got shape {first.shape}")
    return Movie(str(folder), len(files), tuple(first.shape), read), numbers


def _open_any(source: str | os.PathLike[str] | np.ndarray) -> tuple[Movie, np.ndarray | None]:
    if isinstance(source, np.ndarray):
        if source.ndim == 4:  # (T, Z, Y, X) label stacks
            return open_volumes(source), None
        return open_movie(source), None
    if isinstance(source, Movie):
        return source, getattr(source, "frame_numbers", None)
    path = Path(source)
    if not path.exists():
        raise FileReadError(f"{path}: no such file or folder")
    if path.is_dir():
        return _open_folder(path)
    return open_movie(path), None


def open_masks(source: str | os.PathLike[str] | np.ndarray) -> Masks:
    """Open label masks for lazy reading.

    source: a CTC folder (``maskTTT.tif`` or ``man_trackTTT.tif``; frame numbers must be consecutive),
    any folder of single-frame TIFF/PNG files (natural order), a stacked TIFF, a ``.npy`` (T, H, W)
    file or an in-memory (T, H, W) integer array. Frames are read when indexed; a frame that does not
    hold integers raises :class:`InputError` naming it.
    """
    if isinstance(source, Masks):
        return source
    movie, numbers = _open_any(source)
    masks = Masks(movie, numbers)
    masks[0]  # the first frame is checked now, so a wrong file fails before any work
    return masks


def open_images(source: str | os.PathLike[str] | np.ndarray) -> Movie:
    """Open raw images (any dtype) like :func:`open_masks` does masks (CTC ``tTTT.tif`` folders too)."""
    return _open_any(source)[0]


def open_volumes(source: str | os.PathLike[str] | np.ndarray) -> Stacks:
    """Open (T, Z, Y, X) data (raw images or labels, any dtype) lazily, one (Z, Y, X) stack a frame: an
    array, a folder of 3-D TIFFs, or a file :func:`~edgetrack.runtime.io.stacks.open_stacks` opens (TIFF /
    OME-TIFF with a Z axis, ``.npy``)."""
    if isinstance(source, np.ndarray) or not Path(source).is_dir():
        return open_stacks(source)
    movie = _open_folder(Path(source))[0]
    if len(movie.frame_shape) != 3:
        raise InputError(f"{movie.source}: expected 3-D (Z, Y, X) stacks over time, got frames of shape "
                         f"{movie.frame_shape}")
    return Stacks(movie.source, len(movie), movie.frame_shape, movie._reader)


def open_masks_3d(source: str | os.PathLike[str] | np.ndarray) -> Masks:
    """Open 3-D label masks over time (T, Z, Y, X), lazily (sources as :func:`open_volumes`; a CTC 3-D
    result folder keeps its frame numbers). Frame 0 is checked now."""
    if isinstance(source, Masks):
        masks = source
    elif not isinstance(source, np.ndarray) and Path(source).is_dir():
        masks = open_masks(source)
    else:
        masks = Masks(open_volumes(source))
    if len(masks.frame_shape) != 3:
        raise InputError(f"{masks.source}: 3-D tracking needs (T, Z, Y, X) label stacks, got frames of shape "
                         f"{masks.frame_shape} (2-D masks over time: track them with ndim=2)")
    masks[0]
    return masks


def _lineage_file(path: Path) -> Path:
    if path.is_dir():
        for name in _LINEAGE_NAMES:
            if (path / name).is_file():
                return path / name
        raise FileReadError(f"{path}: no {' or '.join(_LINEAGE_NAMES)} in this folder")
    if not path.is_file():
        raise FileReadError(f"{path}: no such file")
    return path


def read_ctc_lineage(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CTC lineage file (or the one in a folder): DataFrame ``label, start, end, parent`` (int64).

    Every non-empty line must be four integers ``L B E P`` with L >= 1 unique, 0 <= B <= E, P >= 0
    (0 = no parent), P a label of the file and ending before B. Malformed lines raise
    :class:`InputError` naming the file and line. Rows are sorted by label.
    """
    path = _lineage_file(Path(path))
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise FileReadError(f"{path}: cannot read ({exc})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4:
            raise InputError(f"{path}, line {number}: expected 4 integers 'L B E P', got {line.strip()!r}")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise InputError(f"{path}, line {number}: expected 4 integers 'L B E P', got {line.strip()!r}") from None
        label, start, end, parent = values
        if label < 1 or start < 0 or end < start or parent < 0 or parent == label:
            raise InputError(f"{path}, line {number}: invalid track {line.strip()!r} (need L >= 1, 0 <= B <= E, "
                             "P >= 0 and P != L)")
        rows.append(values)
    lineage = pd.DataFrame(np.array(rows, np.int64).reshape(-1, 4), columns=list(LINEAGE_COLUMNS))
    check_lineage(lineage, source=str(path))
    return lineage.sort_values("label", kind="stable").reset_index(drop=True)


def check_lineage(lineage: pd.DataFrame, source: str = "lineage") -> pd.DataFrame:
    """Check a lineage table (``label, start, end, parent``): unique labels, known parents ending in time."""
    table = check_table(lineage, LINEAGE_COLUMNS, source=source)
    table = table[list(LINEAGE_COLUMNS)].astype(np.int64)
    dup = table["label"].duplicated()
    if dup.any():
        raise InputError(f"{source}: label {int(table['label'][dup].iloc[0])} is listed more than once")
    ends = dict(zip(table["label"].tolist(), table["end"].tolist()))
    for label, start, parent in table[["label", "start", "parent"]].itertuples(index=False):
        if parent == 0:
            continue
        if parent not in ends:
            raise InputError(f"{source}: track {label} names parent {parent}, which is not a track of the file")
        if ends[parent] >= start:
            raise InputError(f"{source}: track {label} starts at frame {start} but its parent {parent} "
                             f"ends at frame {ends[parent]} (a parent must end before its children start)")
    return table


# ----------------------------------------------------------------------------------------- tracks -> CTC

def ctc_from_tracks(tracks: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convert a tracks table into CTC form (pure, in memory).

    tracks: one row per object: ``frame, label, track_id, parent_track_id`` (label = the object's label
    in the mask of that frame; parent_track_id < 0 = none, set on a daughter track's rows).
    A track is cut into CTC tracks at every gap (the later piece's parent is the earlier piece, the CTC
    convention) and where a daughter of it starts while it goes on (the continuation then becomes a
    third child of the piece before: CTC parents end before their children start).
    Returns (objects: ``frame, label, ctc_label`` per row of ``tracks``; lineage ``label, start, end,
    parent`` of the CTC tracks, labels 1.. in order of (start, track_id)).
    """
    table = check_table(tracks, ("frame", "label", "track_id", "parent_track_id"), source="tracks")
    frame = table["frame"].to_numpy(np.int64)
    label = table["label"].to_numpy(np.int64)
    track = table["track_id"].to_numpy(np.int64)
    parent = table["parent_track_id"].to_numpy(np.int64)
    if len(frame) and (label < 1).any():
        raise InputError("tracks: 'label' must be >= 1 (the object's label in its mask; 0 is background)")
    if table.duplicated(subset=["frame", "label"]).any():
        raise InputError("tracks: the same (frame, label) appears twice; each mask object belongs to one track")
    order = np.lexsort((frame, track))
    f, t = frame[order], track[order]
    if len(f) > 1 and ((t[1:] == t[:-1]) & (f[1:] == f[:-1])).any():
        bad = int(t[1:][(t[1:] == t[:-1]) & (f[1:] == f[:-1])][0])
        raise InputError(f"tracks: track {bad} has two objects in one frame")
    # per track: its rows (sorted by frame), its parent
    bounds = np.flatnonzero(np.diff(t)) + 1 if len(t) else np.zeros(0, np.int64)
    starts = np.concatenate([[0], bounds]).astype(np.int64) if len(t) else np.zeros(0, np.int64)
    ends = np.concatenate([bounds, [len(t)]]).astype(np.int64) if len(t) else np.zeros(0, np.int64)
    track_ids = t[starts]
    track_parent: dict[int, int] = {}
    p_sorted = parent[order]
    for tid, s, e in zip(track_ids.tolist(), starts, ends):
        ps = {int(p) for p in p_sorted[s:e] if p >= 0 and p != tid}
        if len(ps) > 1:
            raise InputError(f"tracks: track {tid} names several parents {sorted(ps)}")
        if ps:
            track_parent[tid] = ps.pop()
    known = set(track_ids.tolist())
    unknown = {p for p in track_parent.values() if p not in known}
    if unknown:
        raise InputError(f"tracks: parent_track_id {sorted(unknown)[0]} is not a track_id of the table")
    first_frame = dict(zip(track_ids.tolist(), f[starts].tolist()))
    rows_of = {tid: (int(s), int(e)) for tid, s, e in zip(track_ids.tolist(), starts, ends)}
    # cuts: gaps, and the start of each daughter while the mother goes on
    daughter_starts: dict[int, set[int]] = {}
    for child, mother in track_parent.items():
        daughter_starts.setdefault(mother, set()).add(first_frame[child])
    piece = np.zeros(len(f), np.int64)  # piece index of each sorted row within its track
    pieces = []  # (start frame, track id, piece number, first row, end row)
    for tid, s, e in zip(track_ids.tolist(), starts, ends):
        rows_f = f[s:e]
        cut = np.zeros(e - s, bool)
        cut[1:] = np.diff(rows_f) > 1
        for ds in daughter_starts.get(tid, ()):
            cut[1:] |= (rows_f[1:] >= ds) & (rows_f[:-1] < ds)
        k = np.cumsum(cut)
        piece[s:e] = k
        cut_at = np.concatenate([[0], np.flatnonzero(cut), [e - s]])
        for j in range(len(cut_at) - 1):
            pieces.append((int(rows_f[cut_at[j]]), tid, j, s + int(cut_at[j]), s + int(cut_at[j + 1])))
    pieces.sort()
    ctc_label = {(tid, j): n + 1 for n, (_, tid, j, _, _) in enumerate(pieces)}
    lineage_rows = []
    for start_frame, tid, j, r0, r1 in pieces:
        end_frame = int(f[r1 - 1])
        if j > 0:
            p = ctc_label[(tid, j - 1)]
        elif tid in track_parent:
            mother = track_parent[tid]
            ms, me = rows_of[mother]
            before = np.flatnonzero(f[ms:me] < start_frame)
            if len(before) == 0:
                raise InputError(f"tracks: track {tid} starts at frame {start_frame}, but its parent {mother} "
                                 "has no object before that frame")
            p = ctc_label[(mother, int(piece[ms + before[-1]]))]
        else:
            p = 0
        lineage_rows.append((ctc_label[(tid, j)], start_frame, end_frame, p))
    lineage = pd.DataFrame(np.array(lineage_rows, np.int64).reshape(-1, 4), columns=list(LINEAGE_COLUMNS))
    sorted_ctc = np.array([ctc_label[(int(a), int(b))] for a, b in zip(t, piece)], np.int64)
    out_label = np.empty(len(f), np.int64)
    out_label[order] = sorted_ctc
    objects = pd.DataFrame({"frame": frame, "label": label, "ctc_label": out_label})
    return objects, lineage


def relabel_frame(mask: np.ndarray, labels: np.ndarray, new_labels: np.ndarray, frame: int = 0) -> np.ndarray:
    """``mask`` with each label ``labels[i]`` replaced by ``new_labels[i]`` and every other label by 0.

    Raises :class:`InputError` when a label of ``labels`` is not in the mask.
    """
    mask = np.asarray(mask)
    top = max(int(new_labels.max()) if len(new_labels) else 0, 1)
    dtype = np.uint16 if top < 2**16 else np.uint32
    if len(labels) == 0:
        return np.zeros(mask.shape, dtype)
    highest = int(mask.max())
    if int(mask.min()) < 0:
        raise InputError(f"mask of frame {frame}: labels must be >= 0")
    if highest < 2**24:
        present = np.bincount(mask.ravel(), minlength=highest + 1) > 0
        inside = labels <= highest
        missing = labels[~inside | ~present[np.minimum(labels, highest)]]
    else:
        missing = np.setdiff1d(labels, np.unique(mask))
    if len(missing):
        raise InputError(f"tracks: label {int(missing[0])} of frame {frame} is not in that frame's mask")
    if highest < 2**24:
        lut = np.zeros(highest + 1, dtype)
        lut[labels] = new_labels
        return lut[mask]
    sorter = np.argsort(labels)  # huge labels: a sorted lookup
    labels_sorted, new_sorted = labels[sorter], new_labels[sorter]
    index = np.clip(np.searchsorted(labels_sorted, mask), 0, len(labels_sorted) - 1)
    return np.where(labels_sorted[index] == mask, new_sorted[index], 0).astype(dtype)


def _frame_name(t: int, n_frames: int) -> str:
    return f"mask{t:03d}.tif" if n_frames <= 1000 else f"mask{t:04d}.tif"


@contextlib.contextmanager
def _atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target`` (never half a folder)."""
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {target}: folder {parent} does not exist")
    if target.exists() and not target.is_dir():
        raise OutputError(f"cannot write {target}: it exists and is not a folder")
    if target.is_dir():
        foreign = [p.name for p in target.iterdir()
                   if not (re.match(r"^mask\d+\.tiff?$", p.name) or p.name == "res_track.txt")]
        if foreign:
            raise OutputError(f"cannot write {target}: it holds files that are not a CTC result ({foreign[0]}, ...)")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        yield tmp
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=parent))
            os.replace(target, old / target.name)
        try:
            os.replace(tmp, target)
        except OSError:
            if old is not None:
                os.replace(old / target.name, target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_lineage(lineage: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a lineage table as CTC ``L B E P`` lines (atomic)."""
    from edgetrack.runtime.io.atomic import atomic_open

    table = check_lineage(lineage)
    with atomic_open(path, "w") as handle:
        for row in table.itertuples(index=False):
            handle.write(f"{row.label} {row.start} {row.end} {row.parent}\n")


def _relabelled_frames(tracks: pd.DataFrame, masks: Masks) -> tuple[Iterator[np.ndarray], pd.DataFrame]:
    """(a generator of each frame's mask relabelled by CTC track, the CTC lineage)."""
    objects, lineage = ctc_from_tracks(tracks)
    n = len(masks)
    if len(objects) and (objects["frame"].min() < 0 or objects["frame"].max() >= n):
        raise InputError(f"tracks: frames must lie in 0..{n - 1} (the masks have {n} frames)")
    objects = objects.sort_values(["frame", "label"], kind="stable")
    cut = np.searchsorted(objects["frame"].to_numpy(), np.arange(n + 1))
    lab = objects["label"].to_numpy(np.int64)
    new = objects["ctc_label"].to_numpy(np.int64)

    def frames() -> Iterator[np.ndarray]:
        for t in range(n):
            yield relabel_frame(masks[t], lab[cut[t]:cut[t + 1]], new[cut[t]:cut[t + 1]], frame=t)

    return frames(), lineage


def ctc_result(tracks: pd.DataFrame, masks) -> tuple[np.ndarray, pd.DataFrame]:
    """A CTC result in memory: (masks relabelled by CTC track, uint16/uint32 (T, H, W) or (T, Z, Y, X); lineage).

    Same conversion as :func:`write_ctc_result` (which writes it frame by frame instead).
    """
    masks = open_masks(masks)
    frames, lineage = _relabelled_frames(tracks, masks)
    out = list(frames)
    dtype = np.result_type(*[f.dtype for f in out]) if out else np.uint16
    return np.stack([f.astype(dtype, copy=False) for f in out]), lineage


def write_ctc_result(tracks: pd.DataFrame, masks: Sequence[np.ndarray] | np.ndarray | str | os.PathLike[str],
                     out_dir: str | os.PathLike[str]) -> Path:
    """Write a CTC result folder: ``maskTTT.tif`` (relabelled by CTC track) and ``res_track.txt``.

    tracks: ``frame, label, track_id, parent_track_id`` (see :func:`ctc_from_tracks`); masks: the label
    masks the labels refer to (array, sequence, or anything :func:`open_masks` takes). Objects of the
    masks that are not in ``tracks`` become background. The folder is written beside ``out_dir`` and
    renamed into place when complete; an existing CTC result folder there is replaced. Returns the path.
    """
    import tifffile

    out = Path(out_dir)
    masks = open_masks(masks)
    frames, lineage = _relabelled_frames(tracks, masks)
    n = len(masks)
    with _atomic_folder(out) as tmp:
        for t, relabelled in enumerate(frames):
            tifffile.imwrite(tmp / _frame_name(t, n), relabelled)
        write_lineage(lineage, tmp / "res_track.txt")
    return out


def read_ctc_result(path: str | os.PathLike[str]) -> tuple[Masks, pd.DataFrame]:
    """A CTC result (or ground-truth TRA) folder: (masks, lineage ``label, start, end, parent``)."""
    path = Path(path)
    if not path.is_dir():
        raise FileReadError(f"{path}: not a folder")
    return open_masks(path), read_ctc_lineage(path)
