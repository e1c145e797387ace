"""The surface reward branch of a generation step: mesh -> ``fuse`` (256 x 64 patch layout, a
linear map W, so gradients pass) -> RewardCS reward; plus how a ``--reward`` argument resolves to a
model folder. The grid-carried fast branch is ``dreamcs.generate.fast_reward``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dreamcs.generate import outputs


def resolve_reward_dir(path: str | Path) -> Path:
    """A RewardCS folder, or a reward run folder holding one (``model/``, ``best/``, ``final/``);
    ``embedded``: the model shipped in the package."""
    if str(path) == "embedded":
        from dreamcs.reward.model import resolve_model_dir

        return resolve_model_dir(path)
    p = Path(path)
    for cand in (p, p / "model", p / "best", p / "final", p / "checkpoints" / "best"):
        if (cand / "model.safetensors").is_file() and (cand / "config.yaml").is_file():
            return cand
    raise FileNotFoundError(f"{p}: no RewardCS model here (need model.safetensors + config.yaml, "
                            "directly or in model/, best/ or final/)")


def normalize_vertices(v: Tensor) -> Tensor:
    """Differentiable ``dreamcs.mesh.normalize``: centre the bounding box, longest side -> 2. (V, 3) -> (V, 3)."""
    lo, hi = v.min(dim=0).values, v.max(dim=0).values
    extent = (hi - lo).max().clamp_min(1e-8)
    return (v - (lo + hi) / 2) * (2.0 / extent)


def _fuse(mesh: Any, n_patches: int, faces_per_patch: int) -> Any:
    """``dreamcs.mesh.fuse``: the mesh in the reward model's patch layout, with its linear map W."""
    from dreamcs.mesh import fuse

    return fuse(mesh, n_patches=n_patches, faces_per_patch=faces_per_patch)


class RewardBranch:
    """mesh -> ``fuse`` (a linear map, so gradients pass) -> RewardCS reward ().

    The fusion is NumPy/SciPy work on a detached copy of the mesh, so ``prefetch`` can start it in
    a worker thread while the render and guidance branches run; ``__call__`` then waits for it.
    The result is the same as fusing in place (fuse is deterministic), so seeds and resume hold.
    """

    def __init__(self, model: Any, prompt: str, n_patches: int, normalize: bool = True) -> None:
        self.model, self.prompt, self.n_patches, self.normalize = model, prompt, int(n_patches), normalize
        self.faces_per_patch = int(model.config.faces_per_patch)
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
        self._pool: Any = None
        self._pending: tuple[Tensor, Any] | None = None

    def _fuse(self, verts: Tensor, faces: Tensor) -> Any:
        return _fuse(outputs.to_trimesh(verts, faces), n_patches=self.n_patches, faces_per_patch=self.faces_per_patch)

    def prefetch(self, verts: Tensor, faces: Tensor) -> None:
        """Start fusing (verts, faces) in the background for the next ``__call__`` on these faces."""
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dreamcs-fuse")
        v, f = verts.detach().cpu().clone(), faces.detach().cpu().clone()
        self._pending = (f, self._pool.submit(self._fuse, v, f))

    def __call__(self, verts: Tensor, faces: Tensor, figure_values: Tensor | None = None) -> Tensor:
        """verts (V, 3) differentiable, faces (F, 3) -> reward (), differentiable in ``verts``.

        figure_values: (T,) teacher ramps read off the surface (``RewardCS.reward_from_vertices``)."""
        pending, self._pending = self._pending, None
        if pending is not None and torch.equal(pending[0], faces.detach().cpu()):
            pm = pending[1].result()
        else:
            pm = self._fuse(verts, faces)
        v = pm.vertices_from(verts)
        if self.normalize:
            v = normalize_vertices(v)
        return self.model.reward_from_vertices(v, pm.faces, self.prompt, figure_values=figure_values)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def sdf_gradient(verts: Tensor, vertex_grad: Tensor | None, sdf: Tensor) -> Tensor:
    """The gradient ``vertex_grad`` (V, 3) on the extracted vertices, pulled back through marching
    tets onto the grid's SDF values ``sdf`` (N,); the graph is kept for the step's own backward."""
    if vertex_grad is None:
        return torch.zeros_like(sdf)
    (g,) = torch.autograd.grad(verts, sdf, vertex_grad, retain_graph=True, allow_unused=True)
    return torch.zeros_like(sdf) if g is None else g.detach()


def compare_gradients(sds_sdf_grad: Tensor, reward_sdf_grad: Tensor) -> dict[str, float]:
    """Norms of the SDS and the reward gradients on the grid's SDF (N,) and their cosine; both are
    gradients of the loss, so a positive cosine means they push the field the same way."""
    a, b = sds_sdf_grad.detach().flatten().double(), reward_sdf_grad.detach().flatten().double()
    na, nb = float(a.norm()), float(b.norm())
    cos = float(a @ b) / (na * nb) if na > 0 and nb > 0 else float("nan")
    return {"grad_sds_sdf": na, "grad_reward_sdf": nb, "grad_cos_sdf": cos}


def probe_surface_reward(
    verts: Tensor, sds_grad: Tensor, reward_grad: Tensor, sdf: Tensor, relative_alpha: float | None = None
) -> tuple[Tensor, float | None, dict[str, float]]:
    """The surface path's reward gradient beside SDS's, both on the extracted vertices (V, 3), pulled
    back through marching tets onto the grid's SDF (N,) and compared there.

    relative_alpha: rescale the reward's gradient so that its SDF norm is this times SDS's (the field
    path's ``reward.relative``). Returns (the reward's vertex gradient to apply (V, 3), its scale (None
    without ``relative_alpha``), the ``compare_gradients`` figures of the gradient applied)."""
    g_sds, g_reward = sdf_gradient(verts, sds_grad, sdf), sdf_gradient(verts, reward_grad, sdf)
    scale = None if relative_alpha is None else relative_scale(relative_alpha, g_sds, g_reward)
    if scale is None:
        return reward_grad, None, compare_gradients(g_sds, g_reward)
    return reward_grad * scale, scale, compare_gradients(g_sds, g_reward * scale)


def relative_scale(alpha: float, sds_sdf_grad: Tensor, reward_sdf_grad: Tensor) -> float:
    """``reward.relative``: the weight on the reward that makes its gradient on the SDF alpha times
    SDS's in norm (0 when the reward's gradient is 0)."""
    norm = float(reward_sdf_grad.norm())
    return alpha * float(sds_sdf_grad.norm()) / norm if norm > 0 else 0.0
