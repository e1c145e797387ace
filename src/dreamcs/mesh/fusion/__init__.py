"""Mesh fusion: any triangle mesh to the fixed patch layout (P patches x K faces, 256 x 64).

The parts, in the order a mesh goes through them:

- ``pipeline``: ``fuse`` (clean -> exact face count -> grouping -> order) and ``PatchedMesh``
  (the result, with its sparse map ``W`` from input vertices, save/load as ``.npz``).
- ``remesh``: exact face count (QEM simplification or subdivision + longest-edge bisection).
- ``patches``: the face-adjacency graph, the grouping's repair pass and the patch / face order.
- ``bisection``: the component-aware recursive bisection at exact ranks behind the grouping.
- ``_kernels`` (bisection levels), ``_cut_kernels`` (one candidate cut), ``_graph_kernels``
  (graph, components, repair, order): the numba-compiled loops.
- ``_reference`` (the grouping) and ``_reference_steps`` (the other kernels): their numpy / scipy
  versions, the same patches; the kernels are tested against them.
- ``_warmup``: a fresh install's first ``fuse`` runs the numpy versions while one background
  process compiles the kernels into numba's cache (~35 s of one core, once).
"""

from dreamcs.mesh.fusion.pipeline import PatchedMesh, fuse

__all__ = ["PatchedMesh", "fuse"]
