"""RewardCS: a mesh encoder fused with a frozen text encoder by cross-attention; an L2-normalised
embedding (on which the CS divergence acts) and a scalar reward.

    model = RewardCS(preset("small"))
    out = model(features, centers, ["a wooden chair"] * B)   # reward (B,), embedding (B, D)
    r = model.reward_from_vertices(vertices, faces, "a wooden chair")   # differentiable in vertices
    model.save_pretrained("runs/r1"); RewardCS.from_pretrained("runs/r1").score("chair.obj", "a chair")
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamcs.config import load_config, save_config
from dreamcs.reward.config import RewardCSConfig
from dreamcs.reward.layers import Block, MeshEncoder
from dreamcs.text import TextEncoder, get_text_encoder

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.yaml"


@dataclass
class RewardOutput:
    """reward (B,): the scalar score; embedding (B, D): L2-normalised fused embedding."""

    reward: Tensor
    embedding: Tensor


class RewardCS(nn.Module):
    """The geometry-aware reward model. Its text encoder is shared, frozen and not part of
    ``state_dict`` (only its spec is saved)."""

    def __init__(self, config: RewardCSConfig | None = None, text_encoder: TextEncoder | None = None) -> None:
        super().__init__()
        self.config = cfg = config or RewardCSConfig()
        # A plain attribute, not a submodule: its weights stay out of state_dict and optimizers.
        self.__dict__["text_encoder"] = text_encoder or get_text_encoder(cfg.text_encoder, cfg.text_max_length)
        d = cfg.dim
        self.mesh_encoder = MeshEncoder(
            d, cfg.depth, cfg.heads, cfg.mlp_ratio, cfg.dropout, cfg.faces_per_patch, cfg.in_features, cfg.pos_hidden
        )
        self.text_proj = nn.Sequential(nn.Linear(self.text_encoder.dim, d), nn.LayerNorm(d))
        self.fusion = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio, cfg.dropout, cross=True) for _ in range(cfg.cross_depth))
        self.norm = nn.LayerNorm(d)
        self.embed_proj = nn.Linear(d, d)
        self.head = nn.Sequential(nn.Linear(d, cfg.head_hidden), nn.GELU(), nn.Linear(cfg.head_hidden, 1))
        self.apply(_init_weights)
        nn.init.constant_(self.head[-1].bias, cfg.reward_bias)

    # -- core -------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.embed_proj.weight.device

    def encode_text(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """prompts (B) -> projected text tokens (B, L, D) and mask (B, L) on the model's device."""
        emb = self.text_encoder.encode(list(prompts)).to(self.device)
        return self.text_proj(emb.tokens), emb.mask

    def forward(self, features: Tensor, centers: Tensor, prompts: list[str]) -> RewardOutput:
        """features (B, P, K, 10), centers (B, P, 3), B prompts -> RewardOutput(reward (B,), embedding (B, D))."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if len(prompts) != features.shape[0]:
            raise ValueError(f"got {len(prompts)} prompts for a batch of {features.shape[0]} meshes")
        x = self.mesh_encoder(features, centers)
        text, mask = self.encode_text(prompts)
        for blk in self.fusion:
            x = blk(x, text, mask)
        pooled = self.embed_proj(self.norm(x[:, 0]))
        embedding = F.normalize(pooled, dim=-1)
        # The head reads the unit embedding scaled to unit-variance entries (entries are ~1/sqrt(D)).
        reward = self.head(embedding * math.sqrt(self.config.dim)).squeeze(-1)
        return RewardOutput(reward=reward, embedding=embedding)

    # -- mesh entry points ------------------------------------------------------------------------
    def reward_from_vertices(self, vertices: Tensor, faces: Tensor | np.ndarray, prompt: str) -> Tensor:
        """vertices (V, 3) float, faces (P, K, 3) long -> reward (), differentiable in ``vertices``."""
        from dreamcs.mesh import patch_centers, patch_features

        if vertices.dim() != 2 or vertices.shape[-1] != 3:
            raise ValueError(f"vertices must be (V, 3), got {tuple(vertices.shape)}")
        faces_t = torch.as_tensor(np.asarray(faces) if not torch.is_tensor(faces) else faces, dtype=torch.long)
        faces_t = faces_t.to(vertices.device)
        if faces_t.dim() != 3 or faces_t.shape[-1] != 3:
            raise ValueError(f"faces must be (P, K, 3), got {tuple(faces_t.shape)}")
        v = vertices.to(self.device, torch.float32)
        feats = patch_features(v, faces_t.to(self.device))
        centers = patch_centers(v, faces_t.to(self.device))
        return self(feats[None], centers[None], [prompt]).reward[0]

    @torch.no_grad()
    def score(self, mesh_or_path: Any, prompt: str) -> float:
        """The reward of a mesh file, a ``trimesh.Trimesh`` or a ``PatchedMesh`` for ``prompt``.

        Files and Trimeshes are loaded, normalised and fused to the config's patch layout first.
        """
        pm = to_patched(mesh_or_path, faces_per_patch=self.config.faces_per_patch)
        was_training = self.training
        self.eval()
        try:
            r = self.reward_from_vertices(torch.as_tensor(pm.vertices, dtype=torch.float32), pm.faces, prompt)
        finally:
            self.train(was_training)
        return float(r)

    @torch.no_grad()
    def score_batch(self, features: Tensor, centers: Tensor, prompts: list[str], batch_size: int = 32) -> Tensor:
        """Batched rewards in eval mode: features (N, P, K, 10), centers (N, P, 3) -> (N,) on the CPU."""
        was_training = self.training
        self.eval()
        try:
            out = [
                self(features[i : i + batch_size].to(self.device), centers[i : i + batch_size].to(self.device),
                     list(prompts[i : i + batch_size])).reward.cpu()
                for i in range(0, features.shape[0], batch_size)
            ]
        finally:
            self.train(was_training)
        return torch.cat(out)

    # -- persistence ------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``model.safetensors`` and ``config.yaml`` into ``directory`` (atomically each)."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{WEIGHTS_NAME}.{os.getpid()}.tmp"
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(tmp))
        os.replace(tmp, d / WEIGHTS_NAME)
        save_config(self.config, d / CONFIG_NAME)
        return d

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, device: str | torch.device = "cpu", text_encoder: TextEncoder | None = None
    ) -> RewardCS:
        """Rebuild a model written by ``save_pretrained`` (the text encoder from its spec)."""
        from safetensors.torch import load_file

        d = Path(directory)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (d / name).is_file():
                raise FileNotFoundError(f"{d / name}: not found; is {d} a RewardCS model folder?")
        model = cls(load_config(RewardCSConfig, d / CONFIG_NAME), text_encoder=text_encoder)
        try:
            state = load_file(str(d / WEIGHTS_NAME))
        except Exception as e:  # safetensors raises its own error types
            raise ValueError(f"{d / WEIGHTS_NAME}: cannot read weights ({e})") from e
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{d / WEIGHTS_NAME}: weights do not fit {d / CONFIG_NAME} ({str(e)[:300]})") from e
        return model.to(device).eval()


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def to_patched(mesh_or_path: Any, faces_per_patch: int = 64, n_patches: int = 256) -> Any:
    """A file path, Trimesh or PatchedMesh -> PatchedMesh (loaded, normalised and fused as needed)."""
    from dreamcs.mesh import fuse, load_mesh, normalize

    obj = mesh_or_path
    if hasattr(obj, "vertices") and hasattr(obj, "faces") and np.ndim(obj.faces) == 3:
        return obj  # already a PatchedMesh
    if isinstance(obj, (str, os.PathLike)):
        obj = load_mesh(obj)
    return fuse(normalize(obj), n_patches=n_patches, faces_per_patch=faces_per_patch)
