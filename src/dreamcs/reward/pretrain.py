"""MeshMAE masked-patch pre-training of the RewardCS mesh encoder on unlabelled meshes.

Half of each mesh's patches (mask_ratio) are hidden; the encoder sees the visible ones (plus the
cls token); a small decoder gets the encoded tokens, a learned mask token at every hidden patch,
and every patch's centre position, and reconstructs the hidden patches' K x 10 face features
(each patch's target standardised, MAE's "norm_pix_loss"). No Chamfer term: patch vertex
positions are not part of the dataset items, so it is not cheap here.

The input is a folder of meshes / prepared .npz (``MeshFolderDataset``) or a built MeshPref
dataset folder (``DatasetMeshes``: every stored mesh of the chosen splits, the unlabelled middle
band included). The encoder's per-channel feature standardisation is set from the input first and
saved with it, so ``reward train --init`` keeps it.

The run folder holds model.safetensors with the encoder under RewardCS's key names
(``mesh_encoder.*``), so ``reward train --init RUN`` starts from it; mae.safetensors holds the
whole MAE for continuing pre-training.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.utils.data import Dataset

from dreamcs.config import save_config
from dreamcs.data.dataset import ask_extra_channels
from dreamcs.reward.augment import feature_stats
from dreamcs.reward.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from dreamcs.reward.config import RewardCSConfig
from dreamcs.reward.layers import Block, MeshEncoder
from dreamcs.reward.train import collate
from dreamcs.utils import append_jsonl, seed_everything


@dataclass
class PretrainConfig:
    model: RewardCSConfig = field(default_factory=RewardCSConfig)
    """The encoder's hyperparameters (text fields are ignored here)."""
    mask_ratio: float = 0.5
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1.5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 50
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 200
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")


class MeshMAE(nn.Module):
    """Encoder (RewardCS's MeshEncoder) + a light decoder that predicts masked patch features."""

    def __init__(self, cfg: PretrainConfig) -> None:
        super().__init__()
        m = cfg.model
        self.mask_ratio = cfg.mask_ratio
        # built as RewardCS builds it (extra channels, sliver gate), so that `reward train --init` fits
        self.mesh_encoder = MeshEncoder(m.dim, m.depth, m.heads, m.mlp_ratio, m.dropout, m.faces_per_patch,
                                        m.in_features, m.pos_hidden, extra_channels=m.extra_channels,
                                        sliver_gate=m.sliver_gate)
        dd = cfg.decoder_dim
        self.enc_norm = nn.LayerNorm(m.dim)
        self.decoder_embed = nn.Linear(m.dim, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.decoder_pos = nn.Sequential(nn.Linear(3, 64), nn.GELU(), nn.Linear(64, dd))
        self.decoder = nn.ModuleList(Block(dd, cfg.decoder_heads, 4.0, 0.0) for _ in range(cfg.decoder_depth))
        self.decoder_norm = nn.LayerNorm(dd)
        self.predict = nn.Linear(dd, m.faces_per_patch * m.in_features)

    def forward(self, features: Tensor, centers: Tensor, generator: torch.Generator | None = None,
                extra: Tensor | None = None) -> Tensor:
        """features (B, P, K, C), centers (B, P, 3), extra (B, P, K, E) when the encoder reads extra
        channels (``dreamcs.mesh.channels``; input only: the targets are the C face features)
        -> the masked-patch reconstruction loss ()."""
        b, p = features.shape[:2]
        n_keep = max(1, min(p - 1, round(p * (1 - self.mask_ratio))))
        noise = torch.rand(b, p, generator=generator).to(features.device)
        order = noise.argsort(1)
        keep, hidden = order[:, :n_keep], order[:, n_keep:]
        tokens = self.mesh_encoder.embed(features, centers, extra)
        visible = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, tokens.shape[-1]))
        enc = self.enc_norm(self.mesh_encoder.run(visible))
        dec_vis = self.decoder_embed(enc[:, 1:])
        full = self.mask_token.expand(b, p, -1).clone()
        full = full.scatter(1, keep[..., None].expand(-1, -1, full.shape[-1]), dec_vis)
        x = torch.cat([self.decoder_embed(enc[:, :1]), full + self.decoder_pos(centers)], 1)
        for blk in self.decoder:
            x = blk(x)
        pred = self.predict(self.decoder_norm(x[:, 1:]))
        target = rearrange(self.mesh_encoder.standardise(features.detach()), "b p k c -> b p (k c)")
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        idx = hidden[..., None].expand(-1, -1, pred.shape[-1])
        return (torch.gather(pred, 1, idx) - torch.gather(target, 1, idx)).pow(2).mean()


def pretrain(cfg: PretrainConfig, dataset: Dataset, out_dir: str | os.PathLike, resume: bool = False) -> MeshMAE:
    """Pre-train on ``dataset`` (items with ``features`` and ``centers``; labels unused)."""
    from safetensors.torch import save_file

    from dreamcs.reward.train import _progress

    out = Path(out_dir)
    seed_everything(cfg.seed)
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("pretrain: no meshes in the input")
    mae = MeshMAE(cfg)
    n_extra = cfg.model.extra_channels
    ask_extra_channels(dataset, n_extra)  # the trained presets read the boundary channels too
    feature_stats(dataset, 512, cfg.seed, extra_key="boundary" if n_extra else None).apply(mae.mesh_encoder)
    mae.to(cfg.device)
    opt = torch.optim.AdamW(mae.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lam(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    start = 0
    if resume and (ck := latest_checkpoint(out)) is not None:
        start = int(load_checkpoint(ck, mae, opt, sched)["step"])
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "pretrain_config.yaml")
    mae.train()
    with _progress(cfg.progress, cfg.steps, start) as advance:
        for step in range(start, cfg.steps):
            # Batch and mask come from generators seeded by (seed, step): resumable exactly.
            g = torch.Generator().manual_seed((cfg.seed * 1_000_003 + step) % (2**63))
            idx = torch.randint(0, n, (cfg.batch_size,), generator=g).tolist()
            b = collate([_with_defaults(dataset[i]) for i in idx])
            extra = b["boundary"].to(cfg.device) if n_extra else None
            loss = mae(b["features"].to(cfg.device), b["centers"].to(cfg.device), generator=g, extra=extra)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(mae.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                append_jsonl(out / "metrics.jsonl", {"step": done, "loss_mae": float(loss.detach()),
                                                     "lr": sched.get_last_lr()[0]})
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                save_checkpoint(out, done, mae, opt, sched)
            advance(float(loss.detach()))
    enc = {f"mesh_encoder.{k}": v.detach().cpu().contiguous() for k, v in mae.mesh_encoder.state_dict().items()}
    save_file(enc, str(out / ".model.safetensors.tmp"))
    os.replace(out / ".model.safetensors.tmp", out / "model.safetensors")
    save_file({k: v.detach().cpu().contiguous() for k, v in mae.state_dict().items()}, str(out / ".mae.tmp"))
    os.replace(out / ".mae.tmp", out / "mae.safetensors")
    return mae.eval()


def _with_defaults(item: dict[str, Any]) -> dict[str, Any]:
    """Unlabelled items need no score/label/prompt; fill them so ``collate`` can batch them."""
    return {"score": 0.0, "label": -1, "prompt": "", **item}


class MeshFolderDataset(Dataset):
    """Unlabelled meshes from a folder: prepared ``.npz`` PatchedMeshes and/or mesh files (loaded,
    normalised and fused once, kept in memory). Items: features (P, K, 10), centers (P, 3), and
    boundary (P, K, E) with ``extra_channels`` E > 0 (set by ``pretrain`` from the model)."""

    def __init__(self, root: str | os.PathLike, faces_per_patch: int = 64, n_patches: int = 256) -> None:
        from dreamcs.mesh import MESH_EXTENSIONS

        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: mesh folder not found")
        exts = {e.lower() for e in MESH_EXTENSIONS} | {".npz"}
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in exts and p.is_file())
        if not self.files:
            raise ValueError(f"{self.root}: no mesh files ({', '.join(sorted(exts))}) found")
        self.k, self.p = faces_per_patch, n_patches
        self.extra_channels = 0
        self._cache: dict[int, dict[str, Tensor]] = {}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        cached = self._cache.get(i)
        if cached is None or cached.get("boundary", torch.empty(0, 0, 0)).shape[-1] < self.extra_channels:
            from dreamcs.mesh import PatchedMesh, patch_centers, patch_features
            from dreamcs.reward.model import to_patched

            f = self.files[i]
            pm = PatchedMesh.load(f) if f.suffix.lower() == ".npz" else to_patched(f, self.k, self.p)
            v = torch.as_tensor(pm.vertices, dtype=torch.float32)
            faces = torch.as_tensor(pm.faces, dtype=torch.long)
            with torch.no_grad():
                self._cache[i] = {"features": patch_features(v, faces), "centers": patch_centers(v, faces),
                                  **_extra(v, faces, self.extra_channels)}
        return {**self._cache[i], "id": self.files[i].stem}


class DatasetMeshes(Dataset):
    """Every stored mesh of a built MeshPref dataset folder, labelled or not (the middle band too),
    from the chosen splits. Items: features (P, K, 10), centers (P, 3), id, and boundary (P, K, E)
    with ``extra_channels`` E > 0 (set by ``pretrain`` from the model).

    splits: which splits' meshes to use; the default keeps val/test geometry out of pre-training.
    """

    def __init__(self, root: str | os.PathLike, splits: tuple[str, ...] = ("train",)) -> None:
        from dreamcs.data.store import read_table

        self.root = Path(root)
        rows = read_table(self.root)
        keep = set(splits)
        seen: set[tuple[str, int]] = set()
        self.rows = []
        for r in rows:
            key = (r["shard"], int(r["shard_index"]))
            if ("all" in keep or r["split"] in keep) and key not in seen:
                seen.add(key)
                self.rows.append(r)
        if not self.rows:
            raise ValueError(f"{self.root}: no meshes in split(s) {', '.join(splits)}")
        self._open: tuple[str, Any] | None = None
        self.extra_channels = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import numpy as np

        from dreamcs.mesh import patch_centers, patch_features

        r = self.rows[i]
        if self._open is None or self._open[0] != r["shard"]:  # rows are in shard order: one open at a time
            self._open = (r["shard"], np.load(self.root / "shards" / r["shard"]))
        z, j = self._open[1], r["shard_index"]
        v = torch.from_numpy(np.asarray(z[f"v{j}"], dtype=np.float32))
        f = torch.from_numpy(np.asarray(z[f"f{j}"], dtype=np.int64))
        with torch.no_grad():
            return {"features": patch_features(v, f), "centers": patch_centers(v, f), "id": r["id"],
                    **_extra(v, f, self.extra_channels)}


def _extra(vertices: Tensor, faces: Tensor, n: int) -> dict[str, Tensor]:
    """{"boundary": (P, K, n)} extra channels of a fused layout, or {} for n = 0."""
    if n <= 0:
        return {}
    from dreamcs.mesh.channels import patch_extra_channels

    return {"boundary": patch_extra_channels(vertices, faces, n)}
