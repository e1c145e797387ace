"""Packaging a trained RewardCS for shipping: weights (float16 by default, the text encoder never
included), config.yaml and a model card, in a folder that ``from_pretrained`` reads, e.g. the
package's own ``dreamcs/assets/reward`` (then ``RewardCS.from_pretrained("embedded")``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from dreamcs.utils import atomic_write_text

MAX_SHIPPED_BYTES = 30 * 2**20
"""The size budget of a shipped model.safetensors (the package carries it)."""


def export_model(ckpt: str | os.PathLike, out_dir: str | os.PathLike, dtype: str = "float16",
                 card_notes: str = "") -> dict[str, Any]:
    """Write ``ckpt``'s model (a RewardCS folder or run) into ``out_dir`` as model.safetensors in
    ``dtype`` (float16 or float32) + config.yaml + README.md; returns {"bytes", "params", "dtype"}.

    Raises ValueError when the weights exceed ``MAX_SHIPPED_BYTES``.
    """
    from safetensors.torch import save_file

    from dreamcs.config import save_config
    from dreamcs.reward.model import CONFIG_NAME, WEIGHTS_NAME, RewardCS

    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be float16 or float32, got {dtype!r}")
    model = RewardCS.from_pretrained(ckpt)
    # integer buffers (the figure head's groups) keep their type
    state = {k: (v.detach().cpu().to(getattr(torch, dtype)) if v.is_floating_point() else v.detach().cpu()).contiguous()
             for k, v in model.state_dict().items()}
    # feature statistics stay float32: they divide the raw inputs
    for k in ("mesh_encoder.feature_mean", "mesh_encoder.feature_std", "mesh_encoder.area_scale"):
        state[k] = model.state_dict()[k].detach().cpu().float().contiguous()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{WEIGHTS_NAME}.{os.getpid()}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt", "dreamcs": "RewardCS"})
    size = tmp.stat().st_size
    if size > MAX_SHIPPED_BYTES:
        tmp.unlink()
        raise ValueError(f"{ckpt}: the weights take {size / 2**20:.1f} MiB in {dtype}, over the "
                         f"{MAX_SHIPPED_BYTES / 2**20:.0f} MiB a shipped model may take; use float16 or a smaller preset")
    os.replace(tmp, out / WEIGHTS_NAME)
    save_config(model.config, out / CONFIG_NAME)
    n_params = sum(p.numel() for p in model.parameters())
    info = {"bytes": size, "params": n_params, "dtype": dtype}
    atomic_write_text(out / "README.md", model_card(Path(ckpt), model.config, info, card_notes))
    return info


def model_card(ckpt: Path, config: Any, info: dict[str, Any], notes: str = "") -> str:
    """The README.md of a shipped model: what it is, how it was trained, how it scores."""
    from dreamcs.config import config_to_dict

    lines = [
        "# RewardCS (shipped with dreamcs)",
        "",
        "A geometry-aware text-to-3D reward: a MeshMAE-style mesh encoder on 256 patches x 64 faces x 10",
        "features, fused with a frozen text encoder (not stored here: it is rebuilt from `text_encoder` in",
        "config.yaml), trained on 3D-MeshPref with MSE + lambda * (-D_CS). Load it with",
        '`RewardCS.from_pretrained("embedded")`, `--ckpt embedded` or `dreamcs generate --reward embedded`.',
        "",
        f"- weights: {info['params']:,} parameters in {info['dtype']} ({info['bytes'] / 2**20:.1f} MiB)",
        f"- exported from: `{ckpt}`",
        f"- model config: `{json.dumps(config_to_dict(config))}`",
    ]
    train_cfg = _first_json(ckpt, ("train_config.json",))
    if train_cfg:
        keep = ("loss_type", "lambda_cs", "steps", "batch_size", "lr", "seed", "augment_rotate_y", "augment_scale")
        lines.append(f"- training: `{json.dumps({k: train_cfg.get(k) for k in keep})}`")
    for sub in ("val", "eval_val", "eval_test"):
        metrics = _first_json(ckpt, (f"{sub}/eval.json",))
        if metrics:
            keep = ("n", "pair_accuracy", "roc_auc", "same_prompt_pair_accuracy", "spearman", "d_cs")
            lines.append(f"- evaluation ({sub}): `{json.dumps({k: metrics.get(k) for k in keep})}`")
    if notes:
        lines += ["", notes]
    return "\n".join(lines) + "\n"


def _first_json(root: Path, names: tuple[str, ...]) -> dict[str, Any] | None:
    for n in names:
        p = root / n
        if p.is_file():
            try:
                return json.loads(p.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                return None
    return None
