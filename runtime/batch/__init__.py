"""Batch tracking of many movies (plates, archives) on Dask distributed, resumable through a manifest.

``batch(inputs, out, ...)`` tracks every movie matched by ``inputs`` into ``out/<name>/tracks.csv`` (and
the motion tables with ``analyze=True``), one Dask task per movie (long movies: detection in chunks of
frames, then linking in order), on an embedded ``distributed.LocalCluster`` or any scheduler by address.
``out/edgetrack-batch.json`` records each input's size, mtime and sha256, the parameters and the
edgetrack version, so a rerun does only what is left. Needs the ``dask`` extra (``distributed``).
"""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "batch": "run",
    "BatchResult": "run",
    "SchedulerError": "run",
    "Manifest": "manifest",
    "MANIFEST_NAME": "manifest",
})
