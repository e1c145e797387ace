"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

    RUN/checkpoints/step_0000300/model.safetensors     model weights
    RUN/checkpoints/step_0000300/state.safetensors     optimizer moments, RNG state
    RUN/checkpoints/step_0000300/state.json            step, param groups, scheduler, extras
    RUN/checkpoints/latest.json                        {"step": 300, "dir": "step_0000300"}

A checkpoint folder is written under a temporary name and renamed into place, and latest.json
is replaced atomically after it, so a kill at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dreamcs.utils import atomic_write_text


def _optimizer_split(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, plain = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                plain[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "plain_state": plain}


def _optimizer_join(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for key, v in meta["plain_state"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    run_dir: str | os.PathLike, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: Any, extra: dict[str, Any] | None = None, keep: int = 2,
) -> Path:
    """Write the checkpoint for ``step`` (steps done) and point latest.json at it."""
    ck = Path(run_dir) / "checkpoints"
    ck.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:07d}"
    tmp = ck / f".{name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    tensors, meta = _optimizer_split(optimizer.state_dict())
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(tmp / "state.safetensors"))
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    state = {"step": step, "optimizer": meta, "scheduler": sched, "extra": extra or {}}
    (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
    final = ck / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(ck / "latest.json", json.dumps({"step": step, "dir": name}))
    old = sorted(p for p in ck.glob("step_*") if p.is_dir() and p.name != name)
    for p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    ck = Path(run_dir) / "checkpoints"
    pointer = ck / "latest.json"
    if pointer.is_file():
        try:
            d = ck / json.loads(pointer.read_text(encoding="utf-8"))["dir"]
            if (d / "state.json").is_file():
                return d
        except (json.JSONDecodeError, KeyError):
            pass
    done = sorted(p for p in ck.glob("step_*") if (p / "state.json").is_file())
    return done[-1] if done else None


def load_checkpoint(
    ckpt_dir: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and torch RNG in place; returns state.json's dict."""
    d = Path(ckpt_dir)
    try:
        state = json.loads((d / "state.json").read_text(encoding="utf-8"))
        model.load_state_dict(load_file(str(d / "model.safetensors")), strict=True)
        tensors = load_file(str(d / "state.safetensors"))
    except (OSError, json.JSONDecodeError, RuntimeError) as e:
        raise ValueError(f"{d}: unreadable checkpoint ({e})") from e
    optimizer.load_state_dict(_optimizer_join(tensors, state["optimizer"]))
    scheduler.load_state_dict({**state["scheduler"], "lr_lambdas": [None] * len(optimizer.param_groups)})
    torch.set_rng_state(tensors["rng.torch"])
    return state
