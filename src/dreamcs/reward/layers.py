"""Transformer pieces: pre-norm attention blocks (self or cross), the text-fusion block, attention
pooling and the MeshMAE-style encoder (with fixed per-channel feature standardisation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention; queries from x, keys/values from ctx (ctx = x for self-attention)."""

    def __init__(self, dim: int, heads: int, dropout: float, ctx_dim: int | None = None) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(ctx_dim or dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, ctx: Tensor, ctx_mask: Tensor | None = None) -> Tensor:
        """x (B, N, D), ctx (B, L, Dc), ctx_mask (B, L) bool, True = attend -> (B, N, D)."""
        q = rearrange(self.q(x), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(self.kv(ctx), "b l (two h d) -> two b h l d", two=2, h=self.heads)
        mask = None if ctx_mask is None else ctx_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN x [, LN ctx]) then x + MLP(LN x)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float, cross: bool = False) -> None:
        super().__init__()
        self.cross = cross
        self.norm1 = nn.LayerNorm(dim)
        self.norm_ctx = nn.LayerNorm(dim) if cross else nn.Identity()
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, ctx: Tensor | None = None, ctx_mask: Tensor | None = None) -> Tensor:
        h = self.norm1(x)
        kv = self.norm_ctx(ctx) if self.cross else h
        x = x + self.drop(self.attn(h, kv, ctx_mask if self.cross else None))
        return x + self.mlp(self.norm2(x))


class FusionBlock(nn.Module):
    """Text fusion for every mesh token (pre-norm): x + CrossAttn(x -> text), then a self-attention
    block (x + SelfAttn, x + MLP).

    The self-attention after the cross-attention lets text-conditioned patch tokens inform each other
    and the cls token, so the whole token set (not the cls token alone) carries the prompt.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.self_block = Block(dim, heads, mlp_ratio, dropout)
        self.norm_q = nn.LayerNorm(dim)
        self.norm_ctx = nn.LayerNorm(dim)
        self.cross = Attention(dim, heads, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, ctx: Tensor, ctx_mask: Tensor | None = None) -> Tensor:
        """x (B, N, D), text ctx (B, L, D), ctx_mask (B, L) -> (B, N, D)."""
        x = x + self.drop(self.cross(self.norm_q(x), self.norm_ctx(ctx), ctx_mask))
        return self.self_block(x)


class AttentionPool(nn.Module):
    """A learned query attends over all tokens: (B, N, D) -> (B, D)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.attn = Attention(dim, heads, 0.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.attn(self.query.expand(x.shape[0], -1, -1), x)[:, 0]


class MeshEncoder(nn.Module):
    """MeshMAE-style: each patch's K x C face features, standardised per channel, flattened ->
    Linear -> LayerNorm, plus a positional MLP on the patch centre; a cls token; ``depth``
    self-attention blocks.

    Input transform, all from buffers (saved with the weights, never trained): face area (channel
    0, ~1e-3 beside angles ~1 and heavy-tailed: up to 40 std above its mean on real meshes) becomes
    log1p(area / area_scale), area_scale the mean face area; then every channel is standardised
    with ``feature_mean`` / ``feature_std`` (C,). The trainer sets them from its training data
    (``set_feature_stats``); until then the transform is log1p(area) and identity elsewhere.
    """

    def __init__(
        self, dim: int, depth: int, heads: int, mlp_ratio: float, dropout: float,
        faces_per_patch: int, in_features: int, pos_hidden: int, extra_channels: int = 0, sliver_gate: float = 0.0,
    ) -> None:
        super().__init__()
        if sliver_gate and in_features != 10:
            raise ValueError(f"sliver_gate needs MeshMAE's 10 channels (normals at 1:4 and 7:10), got {in_features}")
        self.sliver_gate = float(sliver_gate)
        self.faces_per_patch, self.in_features, self.extra_channels = faces_per_patch, in_features, extra_channels
        width = faces_per_patch * (in_features + extra_channels)
        self.patch_embed = nn.Sequential(nn.Linear(width, dim), nn.LayerNorm(dim))
        self.pos_embed = nn.Sequential(nn.Linear(3, pos_hidden), nn.GELU(), nn.Linear(pos_hidden, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.register_buffer("feature_mean", torch.zeros(in_features))
        self.register_buffer("feature_std", torch.ones(in_features))
        self.register_buffer("area_scale", torch.ones(1))
        # extra channels are mostly 0 (a boundary face is ~1-3% of a fused layout): standardised too,
        # or their sparse signal would sit far below the unit-variance MeshMAE channels
        if extra_channels:  # only then: models without extra channels keep their old state_dict keys
            self.register_buffer("extra_mean", torch.zeros(extra_channels))
            self.register_buffer("extra_std", torch.ones(extra_channels))

    @torch.no_grad()
    def set_feature_stats(self, mean: Tensor, std: Tensor, area_scale: float | Tensor | None = None) -> None:
        """Fix the input transform: mean, std (C,) of the *transformed* features (std floored at
        1e-8); area_scale (> 0) the mean face area, None keeps the current one."""
        c = self.in_features
        if mean.shape != (c,) or std.shape != (c,):
            raise ValueError(f"feature stats must be ({c},), got {tuple(mean.shape)} and {tuple(std.shape)}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError("feature stats must be finite")
        if area_scale is not None:
            a = torch.as_tensor(area_scale, dtype=self.area_scale.dtype).reshape(1)
            if not (torch.isfinite(a).all() and bool(a > 0)):
                raise ValueError(f"area_scale must be positive, got {float(a)}")
            self.area_scale.copy_(a)
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp_min(1e-8))

    @torch.no_grad()
    def set_extra_stats(self, mean: Tensor, std: Tensor) -> None:
        """Fix the standardisation of the extra channels: mean, std (E,) (std floored at 1e-8)."""
        e = self.extra_channels
        if mean.shape != (e,) or std.shape != (e,) or not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError(f"extra channel stats must be finite and ({e},), got {tuple(mean.shape)} and {tuple(std.shape)}")
        self.extra_mean.copy_(mean)
        self.extra_std.copy_(std.clamp_min(1e-8))

    def transform(self, features: Tensor) -> Tensor:
        """(..., C) raw features -> (..., C) with the area channel as log1p(area / area_scale)."""
        area = torch.log1p(features[..., :1].clamp_min(0) / self.area_scale)
        return torch.cat([area, features[..., 1:]], -1)

    def standardise(self, features: Tensor) -> Tensor:
        """(..., C) raw features -> (..., C) transformed and standardised with the fixed buffers.

        With ``sliver_gate`` g > 0 the normal channels (1:4, and the normal-dot-vertex-normal 7:10) are
        scaled by a / (a + g), a the face's area over the mean face area: a near-degenerate face's
        normal turns with any 1e-5 jitter of its corners, so it moves towards the channel mean (0
        after standardising) instead of moving the reward."""
        x = (self.transform(features) - self.feature_mean) / self.feature_std
        if self.sliver_gate > 0:
            a = features[..., :1].clamp_min(0) / self.area_scale
            w = a / (a + self.sliver_gate)
            x = torch.cat([x[..., :1], x[..., 1:4] * w, x[..., 4:7], x[..., 7:] * w], -1)
        return x

    def check(self, features: Tensor, centers: Tensor, extra: Tensor | None = None) -> None:
        k, c, e = self.faces_per_patch, self.in_features, self.extra_channels
        if e and extra is not None and extra.dim() == 4 and extra.shape[-1] > e:
            extra = extra[..., :e]
        if features.dim() != 4 or features.shape[2:] != (k, c):
            raise ValueError(f"features must be (B, P, {k}, {c}), got {tuple(features.shape)}")
        if centers.shape != (*features.shape[:2], 3):
            raise ValueError(f"centers must be (B, P, 3) = {(*features.shape[:2], 3)}, got {tuple(centers.shape)}")
        if e and (extra is None or extra.shape != (*features.shape[:3], e)):
            got = None if extra is None else tuple(extra.shape)
            raise ValueError(f"this encoder reads {e} extra channel(s) per face (e.g. the boundary channel of "
                             f"dreamcs.mesh.patch_boundary): expected {(*features.shape[:3], e)}, got {got}")

    def embed(self, features: Tensor, centers: Tensor, extra: Tensor | None = None) -> Tensor:
        """features (B, P, K, C), centers (B, P, 3), extra (B, P, K, E) when the encoder has extra
        channels (standardised with ``extra_mean`` / ``extra_std``) -> patch tokens (B, P, D), position included."""
        self.check(features, centers, extra)
        x = self.standardise(features)
        if self.extra_channels:
            # data may carry more channels than this encoder reads (the ragged channel): the first ones
            e = extra[..., : self.extra_channels].to(x.dtype)
            x = torch.cat([x, (e - self.extra_mean) / self.extra_std], -1)
        flat = rearrange(x, "b p k c -> b p (k c)")
        return self.patch_embed(flat) + self.pos_embed(centers)

    def run(self, tokens: Tensor) -> Tensor:
        """tokens (B, N, D) -> (B, 1 + N, D) with the cls token first, through the blocks."""
        x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], 1)
        for blk in self.blocks:
            x = blk(x)
        return x

    def forward(self, features: Tensor, centers: Tensor, extra: Tensor | None = None) -> Tensor:
        """features (B, P, K, C), centers (B, P, 3)[, extra (B, P, K, E)] -> tokens (B, 1 + P, D)."""
        return self.run(self.embed(features, centers, extra))
