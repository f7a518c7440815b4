"""The napari plugin (npe2): widgets that track spots and cells, analyse motion and follow a growing layer,
plus readers and writers for edgetrack's tables, CTC result folders and geff.

napari finds it through the ``napari.manifest`` entry point (``napari.yaml`` beside this file); every
module is imported only when napari calls one of its contributions, so ``import edgetrack`` and the
command line never load Qt or napari. Install with ``pip install "edgetrack[napari]"``.

Modules: ``tables`` (edgetrack tables <-> napari layer data, no Qt), ``colours`` (motion values ->
RGBA, no Qt), ``motion_plot`` (the ensemble plot, matplotlib), ``readers`` / ``writers`` / ``sample``
(npe2 I/O contributions), ``layers`` (adding or updating layers of a viewer), ``controls`` (the widgets'
shared parts: layer choices, tracker parameters, a worker with a progress bar), and one module per
widget: ``spots_widget``, ``cells_widget``, ``motion_widget``, ``live_widget``.
"""
