"""Adaptive mesh fusion: any triangle mesh to the fixed patch layout (P patches x K faces).

It replaces MeshMAE's MAPS remeshing. Three steps, all deterministic:

1. Exact face count (``remesh.remesh_to_count``): meshes above P*K faces are QEM-simplified
   (fast-simplification) and their vertices projected back onto the input surface; meshes below
   are subdivided 1 -> 4 while that stays under the count and then refined by longest-edge
   bisection (not subdivided past the count and simplified back: QEM then collapses midpoints
   along the original straight edges into zero-area slivers, 109 of 16,384 faces on an
   icosphere); a repair step makes the count exact.
2. Grouping (``patches.partition``): a component-aware recursive bisection at exact ranks over
   the face-adjacency graph (each half grown breadth-first from an extreme face, the cut with the
   fewest pieces kept, creases preferred), then a local repair that makes patches edge-connected
   wherever components allow. Faces of components too small for a patch share pooled patches.
3. Order (``patches.order_patches``): Morton order of patch centres, breadth-first inside a patch.

The result keeps a sparse map ``W`` with ``vertices == W @ input_vertices``, so the patched mesh is
a differentiable (linear) function of the input positions; the topology needs no gradients.

The loops are compiled with numba (``_kernels``, ``_cut_kernels``, ``_graph_kernels``): a process's
first fuse loads them from numba's on-disk cache (under a second). The first time after install or
an edit, a background process compiles them (~35 s of one core; ``_warmup``) while fuse runs their
numpy / scipy versions (the same patches, ~2x slower): the first call takes a fraction of a second
either way. 30-40 ms per 16,384-face mesh on one core after that (``make bench``).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import trimesh
from torch import Tensor

from dreamcs.mesh.errors import MeshError
from dreamcs.mesh.features import patch_centers, patch_features
from dreamcs.mesh.fusion import _graph_kernels, _reference_steps, _warmup
from dreamcs.mesh.fusion.patches import connected_patch_mask, dual_graph, order_patches, partition
from dreamcs.mesh.fusion.remesh import remesh_to_count

__all__ = ["PatchedMesh", "fuse"]

_FORMAT_VERSION = 1


@dataclass
class PatchedMesh:
    """A mesh in the patch layout.

    Attributes:
        vertices: (V, 3) float32, equal to ``W @ input_vertices``.
        faces: (P, K, 3) int64 indices into ``vertices``.
        W: scipy CSR (V, V_in) float32; at most 3 non-zeros per row (barycentric weights).
    """

    vertices: np.ndarray
    faces: np.ndarray
    W: sp.csr_matrix

    @property
    def n_patches(self) -> int:
        return int(self.faces.shape[0])

    @property
    def faces_per_patch(self) -> int:
        return int(self.faces.shape[1])

    def vertices_from(self, input_vertices: Tensor) -> Tensor:
        """Patched vertices (V, 3) from input vertices (V_in, 3): ``W @ input_vertices``, differentiable."""
        if input_vertices.ndim != 2 or input_vertices.shape != (self.W.shape[1], 3):
            raise ValueError(
                f"expected input vertices of shape ({self.W.shape[1]}, 3), got {tuple(input_vertices.shape)}"
            )
        return torch.sparse.mm(self._w_torch(input_vertices.dtype, input_vertices.device), input_vertices)

    def _w_torch(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        key = (dtype, str(device))
        cache = self.__dict__.setdefault("_w_cache", {})
        if key not in cache:
            coo = self.W.tocoo()
            idx = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
            val = torch.from_numpy(coo.data).to(dtype)
            cache[key] = (
                torch.sparse_coo_tensor(idx, val, size=coo.shape, check_invariants=True).coalesce().to(device)
            )
        return cache[key]

    def features(self, vertices: Tensor | None = None) -> Tensor:
        """(P, K, 10) MeshMAE features of these vertices (default: the stored ones)."""
        v = torch.from_numpy(self.vertices) if vertices is None else vertices
        return patch_features(v, torch.from_numpy(self.faces))

    def centers(self, vertices: Tensor | None = None) -> Tensor:
        """(P, 3) patch centres (mean face centroid)."""
        v = torch.from_numpy(self.vertices) if vertices is None else vertices
        return patch_centers(v, torch.from_numpy(self.faces))

    def connected_mask(self) -> np.ndarray:
        """(P,) bool: whether each patch is one edge-connected piece."""
        flat = self.faces.reshape(-1, 3)
        labels = np.repeat(np.arange(self.n_patches), self.faces_per_patch)
        if _warmup.use_compiled():
            return connected_patch_mask(labels, dual_graph(flat))[1]
        from dreamcs.mesh.fusion._reference import dual_graph as ref_dual_graph

        return connected_patch_mask(labels, ref_dual_graph(flat), _numpy=True)[1]

    def n_connected_patches(self) -> int:
        return int(self.connected_mask().sum())

    def to_trimesh(self) -> trimesh.Trimesh:
        return trimesh.Trimesh(self.vertices, self.faces.reshape(-1, 3), process=False)

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` (W as CSR arrays; no pickle), atomically."""
        from dreamcs.utils import atomic_write_bytes

        W = self.W.tocsr()
        buf = io.BytesIO()
        np.savez(
            buf,
            format_version=np.int64(_FORMAT_VERSION),
            vertices=self.vertices.astype(np.float32),
            faces=self.faces.astype(np.int64),
            W_data=W.data.astype(np.float32),
            W_indices=W.indices.astype(np.int64),
            W_indptr=W.indptr.astype(np.int64),
            W_shape=np.asarray(W.shape, dtype=np.int64),
        )
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> PatchedMesh:
        """Read what ``save`` wrote; a broken or foreign file raises MeshError naming it."""
        keys = ("vertices", "faces", "W_data", "W_indices", "W_indptr", "W_shape")
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in keys if k not in z.files]
                if missing:
                    raise MeshError(path, f"not a patched mesh: missing {', '.join(missing)}")
                arr = {k: z[k] for k in keys}
        except MeshError:
            raise
        except FileNotFoundError:
            raise MeshError(path, "file not found") from None
        except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError, OSError ...
            raise MeshError(path, f"unreadable patched mesh ({type(e).__name__}: {e})") from None
        v, f = arr["vertices"], arr["faces"]
        shape = tuple(int(s) for s in arr["W_shape"])
        if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 3 or f.shape[2] != 3 or len(shape) != 2:
            raise MeshError(path, f"bad shapes: vertices {v.shape}, faces {f.shape}, W {shape}")
        if f.size and (f.min() < 0 or f.max() >= len(v)) or shape[0] != len(v):
            raise MeshError(path, "face indices or W rows do not match the vertices")
        try:
            W = sp.csr_matrix((arr["W_data"], arr["W_indices"], arr["W_indptr"]), shape=shape)
        except ValueError as e:
            raise MeshError(path, f"bad W ({e})") from None
        return cls(vertices=v.astype(np.float32), faces=f.astype(np.int64), W=W)


def _clean(mesh: trimesh.Trimesh, kernels=_graph_kernels) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """Input checks; exact duplicate vertices merged (W points at the first copy); faces with a
    repeated vertex dropped. Returns (v_in (V_in, 3) float64, faces over W's rows, W).
    ``kernels``: where ``first_copy`` comes from (the compiled kernels or their numpy versions)."""
    name = getattr(mesh, "metadata", {}).get("file_path") or "<mesh>"
    v_in = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if v_in.ndim != 2 or v_in.shape[1] != 3 or len(v_in) == 0:
        raise MeshError(name, f"no vertices (shape {v_in.shape})")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise MeshError(name, f"no triangle faces (shape {faces.shape})")
    if not np.isfinite(v_in).all():
        raise MeshError(name, "NaN or inf vertex coordinates")
    if faces.min() < 0 or faces.max() >= len(v_in):
        raise MeshError(name, "face indices out of range")
    # each vertex -> the first vertex at exactly its position (rows compared as bit patterns, -0.0
    # made 0.0 first so that it equals 0.0 as it does in float comparisons)
    faces = kernels.first_copy(np.ascontiguousarray(v_in + 0.0).view(np.int64))[faces]
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])]
    # duplicate faces (the same three vertices, either winding): keep the first
    lo = np.minimum(np.minimum(faces[:, 0], faces[:, 1]), faces[:, 2])  # each row sorted: numpy's
    hi = np.maximum(np.maximum(faces[:, 0], faces[:, 1]), faces[:, 2])  # sort of 3-wide rows is slow
    faces = faces[kernels.first_copy(np.stack([lo, faces.sum(1) - lo - hi, hi], 1)) == np.arange(len(faces))]
    if len(faces) == 0:
        raise MeshError(name, "all faces are degenerate")
    used = np.flatnonzero(np.bincount(faces.reshape(-1), minlength=len(v_in)))
    remap = np.full(len(v_in), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    W = sp.csr_matrix((np.ones(len(used)), (np.arange(len(used)), used)), shape=(len(used), len(v_in)))
    return v_in, remap[faces], W


def fuse(
    mesh: trimesh.Trimesh,
    n_patches: int = 256,
    faces_per_patch: int = 64,
    seed: int = 0,
    _numpy: bool | None = None,
) -> PatchedMesh:
    """Fuse a triangle mesh into ``n_patches`` patches of exactly ``faces_per_patch`` faces.

    Args:
        mesh: any triangle mesh (open, non-manifold and multi-component meshes are fine).
        n_patches, faces_per_patch: the layout (256 x 64 by default).
        seed: accepted for the CLI's ``--seed`` convention; fusion is deterministic and uses no
            randomness, so the same mesh always gives the same result.
        _numpy: True: the numpy / scipy reference instead of the compiled kernels (the same
            result, ~1.5x slower; for the benchmark and the tests comparing them); False: the
            kernels, compiled in this process if numba's cache lacks them; None (default): the
            kernels, or the reference while they compile in the background (``_warmup``).

    Returns:
        PatchedMesh with faces (n_patches, faces_per_patch, 3) and W (V, V_in).

    Raises:
        MeshError: no faces, non-finite coordinates, or indices out of range.
    """
    del seed  # deterministic by construction
    if n_patches < 1 or faces_per_patch < 1:
        raise ValueError("n_patches and faces_per_patch must be positive")
    if _numpy is None:
        _numpy = not _warmup.use_compiled()
    kernels = _reference_steps if _numpy else _graph_kernels
    v_in, faces, W = _clean(mesh, kernels)
    try:
        faces, W = remesh_to_count(faces, W, v_in, n_patches * faces_per_patch)
    except RuntimeError as e:  # the exact-count repair gave up: report it like any bad mesh
        raise MeshError(mesh.metadata.get("file_path") or "<mesh>", str(e)) from None
    verts = W @ v_in
    centroids, normals = kernels.face_frames(verts, faces)
    if _numpy:
        from dreamcs.mesh.fusion._reference import dual_graph as ref_dual_graph

        A = ref_dual_graph(faces)
    else:
        A = dual_graph(faces)
    labels = partition(centroids, normals, A, n_patches, faces_per_patch, _numpy=_numpy)
    order = order_patches(labels, centroids, A, n_patches, faces_per_patch, _numpy=_numpy)
    W = W.astype(np.float32).tocsr()
    W.sort_indices()
    return PatchedMesh(vertices=verts.astype(np.float32), faces=faces[order], W=W)
