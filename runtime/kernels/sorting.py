"""Sorting kernels: a stable radix argsort of non-negative int64 keys (Numba)."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["radix_argsort"]


@numba.njit(cache=True, nogil=True)
def radix_argsort(keys: np.ndarray) -> np.ndarray:
    """Stable argsort of int64 keys >= 0 by LSD radix sort (11-bit digits, keys carried along)."""
    n = keys.shape[0]
    order = np.arange(n)
    if n < 2:
        return order
    k = keys.copy()
    kmax = k.max()
    t_order = np.empty(n, np.int64)
    t_k = np.empty(n, np.int64)
    count = np.empty(2049, np.int64)
    shift = 0
    while shift == 0 or (shift < 63 and (kmax >> shift) > 0):
        count[:] = 0
        for i in range(n):
            count[((k[i] >> shift) & 2047) + 1] += 1
        for d in range(2048):
            count[d + 1] += count[d]
        for i in range(n):
            d = (k[i] >> shift) & 2047
            pos = count[d]
            t_order[pos] = order[i]
            t_k[pos] = k[i]
            count[d] = pos + 1
        order, t_order = t_order, order
        k, t_k = t_k, k
        shift += 11
    return order
