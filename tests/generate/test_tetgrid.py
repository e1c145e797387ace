"""Tet grids: conforming Kuhn lattices with precomputed edges, cached on disk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamcs.generate.tetgrid import TET_EDGE_PAIRS, build_tetgrid_arrays, load_tetgrid


@pytest.mark.parametrize("r", [1, 3])
def test_tets_positive_fill_cube_and_conform(r: int) -> None:
    a = build_tetgrid_arrays(r)
    v, t = a["vertices"].astype(np.float64), a["tets"].astype(np.int64)
    assert v.shape == ((r + 1) ** 3, 3) and t.shape == (6 * r**3, 4)
    assert v.min() == -1.0 and v.max() == 1.0
    p = v[t]
    vol = np.linalg.det(p[:, 1:] - p[:, :1]) / 6.0
    assert (vol > 0).all()
    assert np.isclose(vol.sum(), 8.0)
    # Conforming: every triangle is shared by two tets, except the 2 per boundary square.
    tris = np.sort(t[:, [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]].reshape(-1, 3), axis=1)
    _, counts = np.unique(tris, axis=0, return_counts=True)
    assert set(counts.tolist()) <= {1, 2}
    assert (counts == 1).sum() == 6 * 2 * r * r


def test_edges_unique_and_tet_edges_consistent() -> None:
    a = build_tetgrid_arrays(3)
    t, e, te = (a[k].astype(np.int64) for k in ("tets", "edges", "tet_edges"))
    pairs = np.sort(t[:, list(TET_EDGE_PAIRS)].reshape(-1, 2), axis=1)
    uniq = np.unique(pairs, axis=0)
    assert len(uniq) == len(e) == len(np.unique(e, axis=0))
    assert (e[:, 0] < e[:, 1]).all()
    assert np.array_equal(e[te.reshape(-1)], pairs)


def test_cache_roundtrip_and_corrupt_file(tmp_path) -> None:
    g1 = load_tetgrid(4, cache_dir=tmp_path, scale=1.5)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    g2 = load_tetgrid(4, cache_dir=tmp_path, scale=1.5)
    for name in ("vertices", "tets", "edges", "tet_edges"):
        assert torch.equal(getattr(g1, name), getattr(g2, name))
    assert g2.vertices.abs().max().item() == pytest.approx(1.5)
    assert g2.cell_size == pytest.approx(0.75)
    files[0].write_bytes(b"not an npz")
    g3 = load_tetgrid(4, cache_dir=tmp_path)
    assert torch.equal(g3.tets, g1.tets)
    assert list(tmp_path.glob(".*tmp")) == []


def test_bad_resolution() -> None:
    with pytest.raises(ValueError, match="resolution"):
        build_tetgrid_arrays(0)
