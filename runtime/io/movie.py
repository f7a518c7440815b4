"""The movie every reader returns: lazy, frame-by-frame access with the frame count and shape known up front."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from edgetrack.runtime.errors import EdgetrackError, FileReadError, InputError


def to_grey(image: np.ndarray) -> np.ndarray:
    """Collapse an RGB(A) image (H, W, 3 or 4) to luminance (H, W), float32; 2-D input is returned as is."""
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        rgb = image[..., :3].astype(np.float32)
        return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return image


class Movie:
    """A movie opened for lazy, frame-by-frame reading.

    ``len(movie)`` is the number of frames, ``movie.frame_shape`` is (H, W), ``movie[i]`` is frame i as a
    2-D array (original dtype, colour collapsed to grey), and iterating yields the frames in order. A
    movie of z-stacks has a (Z, Y, X) ``frame_shape`` and its frames are returned as read (no colour
    collapse, which would take a stack of 3 or 4 planes for RGB).
    Use :func:`open_movie` to create one.
    """

    def __init__(self, source: str, n_frames: int, frame_shape: tuple[int, ...], reader) -> None:
        self.source = source
        self._n = n_frames
        self.frame_shape = frame_shape
        self._reader = reader

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> np.ndarray:
        if not -self._n <= index < self._n:
            raise IndexError(f"frame {index} out of range for a movie of {self._n} frames")
        index %= self._n
        try:
            frame = self._reader(index)
        except EdgetrackError:
            raise  # already names the file and frame
        except (OSError, ValueError, RuntimeError) as exc:
            raise FileReadError(f"{self.source}: cannot read frame {index}: {exc}") from None
        frame = np.asarray(frame)
        if len(self.frame_shape) == 2:
            frame = to_grey(frame)
        if frame.shape != self.frame_shape:
            raise InputError(
                f"{self.source}: frame {index} has shape {frame.shape}, expected {self.frame_shape} "
                "like the first frame"
            )
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self._n):
            yield self[i]
