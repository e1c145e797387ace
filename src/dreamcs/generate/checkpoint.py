"""Generation checkpoints: one safetensors file per save, no pickle, written atomically.

A checkpoint holds everything a resumed run needs to continue exactly as an uninterrupted one:

- ``model.<name>`` tensors: the state of each trainable module (the geometry field);
- ``optim.<param>.<key>`` tensors and the param groups (JSON metadata): the optimizer state;
- ``rng.*``: the torch (CPU and CUDA), NumPy and Python generator states;
- metadata ``step`` (steps completed) and free-form ``extra`` JSON.

Files are ``RUN/checkpoints/step_000100.safetensors``; the newest ``keep`` are kept.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dreamcs.utils import atomic_write_bytes

_NAME = re.compile(r"step_(\d+)\.safetensors$")


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state().clone()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s.clone()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    tensors["rng.python"] = torch.tensor(internal, dtype=torch.int64)
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(cached)], "python": [version, gauss_next]}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if states:
            torch.cuda.set_rng_state_all(states)
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, gauss_next = meta["python"]
    random.setstate((version, tuple(int(x) for x in tensors["rng.python"].tolist()), gauss_next))


def save_checkpoint(
    folder: str | Path,
    step: int,
    modules: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write ``folder/step_{step:06d}.safetensors`` atomically and prune all but the newest ``keep``."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for k, v in module.state_dict().items():
            tensors[f"model.{name}.{k}"] = v.detach().cpu().contiguous()
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in opt["state"].items():
        for k, v in state.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    rng, rng_meta = _rng_state()
    tensors.update(rng)
    metadata = {
        "format": "dreamcs-generate-checkpoint/1",
        "step": str(int(step)),
        "param_groups": json.dumps(opt["param_groups"]),
        "optim_scalars": json.dumps(scalars),
        "rng": json.dumps(rng_meta),
        "extra": json.dumps(extra or {}),
    }
    folder = Path(folder)
    path = atomic_write_bytes(folder / f"step_{int(step):06d}.safetensors", save(tensors, metadata=metadata))
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoint files in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def load_checkpoint(
    path: str | Path, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer, restore_rng: bool = True
) -> tuple[int, dict[str, Any]]:
    """Restore modules, optimizer and (optionally) the RNG states; returns (step, extra)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable checkpoint ({e})") from e
    if metadata.get("format") != "dreamcs-generate-checkpoint/1":
        raise ValueError(f"{path}: not a dreamcs generation checkpoint (format {metadata.get('format')!r})")
    for name, module in modules.items():
        prefix = f"model.{name}."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            missing, unexpected = module.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise ValueError(f"{path}: the {name} state does not fit this config ({str(e)[:300]})") from e
        if missing or unexpected:
            raise ValueError(f"{path}: the {name} state does not fit this config "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    opt_state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, key = k.split(".", 2)
            opt_state.setdefault(int(pid), {})[key] = v
    for pid, vals in json.loads(metadata["optim_scalars"]).items():
        opt_state.setdefault(int(pid), {}).update(vals)
    optimizer.load_state_dict({"state": opt_state, "param_groups": json.loads(metadata["param_groups"])})
    if restore_rng:
        _set_rng_state(tensors, json.loads(metadata["rng"]))
    return int(metadata["step"]), json.loads(metadata.get("extra", "{}"))
