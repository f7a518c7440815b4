"""The runtime must never import PyTorch: importing it and tracking a movie are checked in a fresh process."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_runtime_tracks_a_movie_without_torch(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys

        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("the runtime imported torch")
                return None

        sys.meta_path.insert(0, BlockTorch())
        import numpy as np
        import tifffile
        from edgetrack.runtime.cli.app import main
        from edgetrack.runtime.simulate.spots import simulate_movie

        movie, truth = simulate_movie(n_frames=8, shape=(64, 64), n_spots=10, seed=1)
        tifffile.imwrite(r"{tmp_path / 'm.tif'}", movie)
        code = main(["track", r"{tmp_path / 'm.tif'}", "--out", r"{tmp_path / 't.csv'}", "--quiet"])
        assert code == 0, code
        assert not [m for m in sys.modules if m == "torch" or m.startswith("torch.")]
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
