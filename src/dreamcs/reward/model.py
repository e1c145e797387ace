"""RewardCS: a mesh encoder fused with a frozen text encoder by cross-attention; an L2-normalised
embedding (on which the CS divergence acts) and a scalar reward.

    model = RewardCS(preset("small"))
    out = model(features, centers, ["a wooden chair"] * B)   # reward (B,), embedding (B, D)
    r = model.reward_from_vertices(vertices, faces, "a wooden chair")   # differentiable in vertices
    model.save_pretrained("runs/r1"); RewardCS.from_pretrained("runs/r1").score("chair.obj", "a chair")
    RewardCS.from_pretrained("embedded")   # the model shipped in dreamcs/assets/reward/

Every mesh token cross-attends to the prompt (``FusionBlock``), and the embedding reads all tokens:
the cls token and an attention pool over the fused tokens, concatenated and projected.
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
from dreamcs.reward.layers import AttentionPool, FusionBlock, MeshEncoder
from dreamcs.text import TextEmbedding, TextEncoder, get_text_encoder

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.yaml"
EMBEDDED = "embedded"
"""The name that ``from_pretrained`` and ``--ckpt`` resolve to the model shipped in the package."""


def embedded_dir() -> Path:
    """The folder of the shipped reward model (``dreamcs/assets/reward``)."""
    return Path(__file__).resolve().parent.parent / "assets" / "reward"


def resolve_model_dir(directory: str | os.PathLike) -> Path:
    """``"embedded"`` -> the shipped model's folder (a clear error while its weights are absent);
    any other path unchanged."""
    if str(directory) != EMBEDDED:
        return Path(directory)
    d = embedded_dir()
    if not (d / WEIGHTS_NAME).is_file() or not (d / CONFIG_NAME).is_file():
        raise FileNotFoundError(
            f"the shipped reward model is missing: {d} has no {WEIGHTS_NAME} + {CONFIG_NAME} (its weights have "
            "not been trained and shipped yet); train one with `dreamcs reward train` and pass its folder, or "
            f"install it with `dreamcs reward export --ckpt RUN --out {d}`"
        )
    return d


@dataclass
class RewardOutput:
    """reward (B,): the scalar score (with ``figure_weight`` > 0, the learned head's reward mixed with
    the teacher-figure score); embedding (B, D): L2-normalised fused embedding; learned (B,): the
    learned head's reward alone (what training's objectives read); swapped (B,): the learned head's
    reward of the same meshes read with other prompts, when ``forward`` was given ``swap_text``;
    teacher_figures (B, T): logits of the teacher's penalty ramps, for a model with ``teacher_figures``."""

    reward: Tensor
    embedding: Tensor
    swapped: Tensor | None = None
    teacher_figures: Tensor | None = None
    learned: Tensor | None = None


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
            d, cfg.depth, cfg.heads, cfg.mlp_ratio, cfg.dropout, cfg.faces_per_patch, cfg.in_features, cfg.pos_hidden,
            extra_channels=cfg.extra_channels, sliver_gate=cfg.sliver_gate,
        )
        self.text_proj = nn.Sequential(nn.Linear(self.text_encoder.dim, d), nn.LayerNorm(d))
        self.fusion = nn.ModuleList(FusionBlock(d, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.cross_depth))
        self.norm = nn.LayerNorm(d)
        self.pool = AttentionPool(d, cfg.heads)
        self.embed_proj = nn.Linear(2 * d, d)
        self.head = nn.Sequential(nn.Linear(d, cfg.head_hidden), nn.GELU(), nn.Linear(cfg.head_hidden, 1))
        if cfg.text_match:
            self.match_mesh = nn.Linear(d, d)
            self.match_text = nn.Linear(self.text_encoder.dim, d)
            self.match_scale = nn.Parameter(torch.tensor(1.0))
        if cfg.teacher_figures:
            # reads the mesh tokens before the text: what the teacher sees is geometry only
            self.figure_head = nn.Sequential(nn.LayerNorm(2 * d), nn.Linear(2 * d, cfg.teacher_figures))
            weights, groups = _teacher_weights(cfg.teacher_figures)
            self.register_buffer("figure_weights", weights)
            self.register_buffer("figure_groups", groups)
        self.apply(_init_weights)
        nn.init.constant_(self.head[-1].bias, cfg.reward_bias)

    # -- core -------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.embed_proj.weight.device

    def _apply(self, fn: Any, recurse: bool = True) -> RewardCS:
        # ``.to(device)`` / ``.cuda()`` also move the frozen text encoder, which is not a submodule
        # (a dtype cast is not passed on: the encoder's cached outputs are float32 by contract).
        super()._apply(fn, recurse)
        dev = self.embed_proj.weight.device
        params = list(self.text_encoder.parameters())
        if params and params[0].device != dev:
            self.text_encoder.to(dev)
        return self

    def encode_text(self, prompts: list[str], text: TextEmbedding | None = None) -> tuple[Tensor, Tensor]:
        """prompts (B) -> projected text tokens (B, L, D) and mask (B, L) on the model's device.

        text: the prompts' encoder output when already computed (e.g. by a ``TextBank``).
        """
        emb = self._text(prompts, text)
        return self.text_proj(emb.tokens), emb.mask

    def _text(self, prompts: list[str], text: TextEmbedding | None) -> TextEmbedding:
        """The prompts' encoder output on the model's device (``text`` when already computed)."""
        return (text or self.text_encoder.encode(list(prompts))).to(self.device)

    def fused_tokens(
        self, features: Tensor, centers: Tensor, prompts: list[str], text: TextEmbedding | None = None,
        boundary: Tensor | None = None,
    ) -> Tensor:
        """features (B, P, K, 10), centers (B, P, 3), B prompts[, boundary (B, P, K, E)] -> text-fused
        tokens (B, 1 + P, D), cls first. ``boundary`` is read only by a model with ``boundary_channel``."""
        prompts = self._check_prompts(prompts, features)
        x = self.mesh_encoder(features, centers, boundary if self.config.boundary_channel else None)
        return self._fuse(x, *self.encode_text(prompts, text))

    @staticmethod
    def _check_prompts(prompts: list[str] | str, features: Tensor) -> list[str]:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if len(prompts) != features.shape[0]:
            raise ValueError(f"got {len(prompts)} prompts for a batch of {features.shape[0]} meshes")
        return prompts

    def _fuse(self, x: Tensor, ctx: Tensor, mask: Tensor) -> Tensor:
        """mesh tokens (B, 1 + P, D), text tokens (B, L, D) + mask -> fused, normed tokens (B, 1 + P, D)."""
        for blk in self.fusion:
            x = blk(x, ctx, mask)
        return self.norm(x)

    def forward(
        self, features: Tensor, centers: Tensor, prompts: list[str], text: TextEmbedding | None = None,
        boundary: Tensor | None = None, swap_text: TextEmbedding | None = None, figure_values: Tensor | None = None,
    ) -> RewardOutput:
        """features (B, P, K, 10), centers (B, P, 3), B prompts -> RewardOutput(reward (B,), embedding (B, D)).

        text: the prompts' ``TextEmbedding`` when precomputed (training caches them per dataset).
        boundary: (B, P, K, E) from ``dreamcs.mesh.channels.patch_extra_channels`` (the model reads the
        first ``config.extra_channels``); required by (and only read by) a model with ``boundary_channel``.
        swap_text: other prompts' ``TextEmbedding`` (B rows): also return the meshes' reward under them.
        figure_values: (B, T) teacher ramps read off the meshes (``dreamcs.reward.exact_figures``; NaN
        where unknown): used in place of the figure head's for ``config.exact_figures``.
        """
        prompts = self._check_prompts(prompts, features)
        tokens = self.mesh_encoder(features, centers, boundary if self.config.boundary_channel else None)
        reward, embedding = self._head(tokens, self._text(prompts, text))
        # the mesh is encoded once and read again with other prompts (training's prompt-swap term)
        swapped = None if swap_text is None else self._head(tokens, swap_text.to(self.device))[0]
        figures = self._figures(tokens)
        return RewardOutput(reward=self._mix(reward, figures, figure_values), embedding=embedding, swapped=swapped,
                            teacher_figures=figures, learned=reward)

    def rewards_for_texts(
        self, features: Tensor, centers: Tensor, texts: list[TextEmbedding], boundary: Tensor | None = None,
        figure_values: Tensor | None = None,
    ) -> Tensor:
        """features (B, P, K, 10), centers (B, P, 3), T prompt sets (each B rows) -> rewards (T, B): the
        meshes encoded once and read with each set (e.g. their own prompts and other objects')."""
        tokens = self.mesh_encoder(features, centers, boundary if self.config.boundary_channel else None)
        figures = self._figures(tokens)
        return torch.stack([self._mix(self._head(tokens, t.to(self.device))[0], figures, figure_values) for t in texts])

    def _figures(self, tokens: Tensor) -> Tensor | None:
        """mesh tokens (B, 1 + P, D) -> the figure head's logits (B, T), before any text; None without a head."""
        if not self.config.teacher_figures:
            return None
        return self.figure_head(torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], -1))

    def teacher_score(self, figures: Tensor, figure_values: Tensor | None = None) -> Tensor:
        """Figure logits (B, T) -> the geometric teacher's score as the head reads it (B,), in (0, 5]:
        like the scorer, the mean over its groups (realism, fidelity) of 5 minus the group's weighed
        penalty ramps (``figure_weights``, the scorer's weights); a softplus in place of the scorer's
        clip at 0 keeps a gradient on badly damaged meshes. figure_values (B, T) or (B, T + E): ramps read
        off the meshes, used for ``config.exact_figures`` where finite; the E columns beyond the head's
        are ``MESH_ONLY_FIGURES``, added with the scorer's weights where read."""
        ramps = torch.sigmoid(figures)
        if figure_values is not None and self.config.exact_figures:
            from dreamcs.reward.exact_figures import exact_mask

            # a config choice, not a weight: read at every call, so it can be set on a loaded model
            fv = figure_values[..., : ramps.shape[-1]].to(ramps)
            use = exact_mask(list(self.config.exact_figures), ramps.shape[-1]).to(ramps.device) & torch.isfinite(fv)
            ramps = torch.where(use, torch.nan_to_num(fv, nan=0.0), ramps)
        pen = ramps * self.figure_weights
        # T group slots, the empty ones masked out: no device-to-host read of the group count per call
        per_group = torch.zeros_like(pen).index_add_(-1, self.figure_groups, pen)
        if figure_values is not None and self.config.exact_figures and figure_values.shape[-1] > ramps.shape[-1]:
            from dreamcs.reward.exact_figures import mesh_only_penalties

            # the figures no head predicts, weighed by the current scorer where read off the mesh
            extra = figure_values[..., ramps.shape[-1]:].to(ramps)
            per_group = per_group + mesh_only_penalties(list(self.config.exact_figures), extra, ramps.shape[-1])
        used = torch.zeros_like(self.figure_weights).index_add_(0, self.figure_groups, torch.ones_like(self.figure_weights)) > 0
        return (F.softplus(5.0 - per_group, beta=2.0).clamp_max(5.0) * used).sum(-1) / used.sum()

    def _mix(self, learned: Tensor, figures: Tensor | None, figure_values: Tensor | None = None) -> Tensor:
        w = self.config.figure_weight
        if w == 0 or figures is None:
            return learned
        return (1.0 - w) * learned + w * self.teacher_score(figures, figure_values)

    def _head(self, tokens: Tensor, text: TextEmbedding) -> tuple[Tensor, Tensor]:
        """mesh tokens (B, 1 + P, D), the prompts' TextEmbedding -> reward (B,), unit embedding (B, D)."""
        x = self._fuse(tokens, self.text_proj(text.tokens), text.mask)
        pooled = self.embed_proj(torch.cat([x[:, 0], self.pool(x)], -1))
        embedding = F.normalize(pooled, dim=-1)
        # The head reads the unit embedding scaled to unit-variance entries (entries are ~1/sqrt(D)).
        reward = self.head(embedding * math.sqrt(self.config.dim)).squeeze(-1)
        if self.config.text_match:
            agree = F.cosine_similarity(self.match_mesh(tokens[:, 0]), self.match_text(text.pooled), dim=-1)
            reward = reward + self.match_scale * agree
        return reward, embedding

    # -- mesh entry points ------------------------------------------------------------------------
    def reward_from_vertices(
        self, vertices: Tensor, faces: Tensor | np.ndarray, prompt: str, boundary: Tensor | None = None,
        figure_values: Tensor | None = None,
    ) -> Tensor:
        """vertices (V, 3) float, faces (P, K, 3) long -> reward (), differentiable in ``vertices``.

        boundary: (P, K, E) ``patch_boundary`` of this layout when the caller keeps it (it depends on
        the topology only); computed here otherwise, for a model with ``boundary_channel``.
        figure_values: (T,) ramps read off the mesh before fusion (``exact_figure_values``), kept differentiable."""
        from dreamcs.mesh import patch_centers, patch_features
        from dreamcs.mesh.channels import patch_extra_channels

        if vertices.dim() != 2 or vertices.shape[-1] != 3:
            raise ValueError(f"vertices must be (V, 3), got {tuple(vertices.shape)}")
        faces_t = torch.as_tensor(np.asarray(faces) if not torch.is_tensor(faces) else faces, dtype=torch.long)
        faces_t = faces_t.to(vertices.device)
        if faces_t.dim() != 3 or faces_t.shape[-1] != 3:
            raise ValueError(f"faces must be (P, K, 3), got {tuple(faces_t.shape)}")
        v = vertices.to(self.device, torch.float32)
        feats = patch_features(v, faces_t.to(self.device))
        centers = patch_centers(v, faces_t.to(self.device))
        if self.config.boundary_channel:
            if boundary is None:
                boundary = patch_extra_channels(v, faces_t, self.config.extra_channels)
            boundary = boundary.to(self.device)[None]
        else:
            boundary = None
        fv = None if figure_values is None else figure_values.to(self.device)[None]
        return self(feats[None], centers[None], [prompt], boundary=boundary, figure_values=fv).reward[0]

    @torch.no_grad()
    def score(self, mesh_or_path: Any, prompt: str, figures_from: Any = None) -> float:
        """The reward of a mesh file, a ``trimesh.Trimesh`` or a ``PatchedMesh`` for ``prompt``.

        Files and Trimeshes are loaded, normalised and fused to the config's patch layout first; the
        ``config.exact_figures`` are read off them before fusion, or off ``figures_from`` (the mesh a
        PatchedMesh was fused from; without it a PatchedMesh gets the head's reading).
        """
        from dreamcs.mesh import load_mesh
        from dreamcs.reward.exact_figures import exact_figure_values_mesh

        if isinstance(mesh_or_path, (str, os.PathLike)):
            mesh_or_path = load_mesh(mesh_or_path)
        fv = None
        source = mesh_or_path if figures_from is None else figures_from
        if self.config.exact_figures and np.ndim(source.faces) == 2:
            fv = exact_figure_values_mesh(list(self.config.exact_figures), source)
        pm = to_patched(mesh_or_path, faces_per_patch=self.config.faces_per_patch)
        was_training = self.training
        self.eval()
        try:
            r = self.reward_from_vertices(torch.as_tensor(pm.vertices, dtype=torch.float32), pm.faces, prompt,
                                          figure_values=fv)
        finally:
            self.train(was_training)
        return float(r)

    @torch.no_grad()
    def score_batch(
        self, features: Tensor, centers: Tensor, prompts: list[str], batch_size: int = 32, boundary: Tensor | None = None
    ) -> Tensor:
        """Batched rewards in eval mode: features (N, P, K, 10), centers (N, P, 3)[, boundary (N, P, K, 1)]
        -> (N,) on the CPU."""
        was_training = self.training
        self.eval()
        try:
            out = [
                self(features[i : i + batch_size].to(self.device), centers[i : i + batch_size].to(self.device),
                     list(prompts[i : i + batch_size]),
                     boundary=None if boundary is None else boundary[i : i + batch_size].to(self.device)).reward.cpu()
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
        """Rebuild a model written by ``save_pretrained`` (the text encoder from its spec).

        ``"embedded"`` loads the model shipped in the package (``dreamcs/assets/reward``).
        Weights stored in float16 are loaded into the float32 model.
        """
        from safetensors.torch import load_file

        d = resolve_model_dir(directory)
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


def _teacher_weights(n: int) -> tuple[Tensor, Tensor]:
    """The geometric scorer's penalty weights (n,) of the ``n`` figures of ``TEACHER_FIGURES`` (0 for one
    the scorer does not weigh) and their groups (n,) (0 realism, 1 fidelity); ones and one group when
    ``n`` is not that list's length."""
    from dreamcs.data.teacher_figures import TEACHER_FIGURES, scorer_weights

    if len(TEACHER_FIGURES) != n:
        return torch.ones(n), torch.zeros(n, dtype=torch.long)
    weights, groups = scorer_weights(TEACHER_FIGURES)
    return torch.tensor(weights), torch.tensor(groups, dtype=torch.long)


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
