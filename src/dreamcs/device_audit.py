"""Find tensors that do not follow ``module.to(device)``.

A tensor kept as a plain attribute (or inside a plain dataclass attribute) stays where it was made
when the module moves; on a GPU that is a crash at the first step (``alphas_cumprod`` on the CPU
indexed by CUDA timesteps). Tests move a module to the ``meta`` device, which needs no GPU, and
ask this audit for what stayed behind:

    module.to("meta")
    assert misplaced_tensors(module, "meta") == []
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn


def _walk_plain(obj: Any, path: str, device: torch.device, out: list[str], depth: int) -> None:
    """Tensors inside a plain attribute value: a tensor, or a dataclass holding tensors."""
    if isinstance(obj, torch.Tensor):
        if obj.device.type != device.type:
            out.append(f"{path} on {obj.device}")
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type) and depth < 3:
        for f in dataclasses.fields(obj):
            _walk_plain(getattr(obj, f.name, None), f"{path}.{f.name}", device, out, depth + 1)


def misplaced_tensors(module: nn.Module, device: str | torch.device) -> list[str]:
    """Paths (``"unet.conv_in.weight on cpu"``) of tensors reachable from ``module`` that are not
    on ``device``: parameters, buffers, plain tensor attributes and tensors in dataclass attributes
    of every submodule. Plain (unregistered) submodules and dict/list caches are not walked: they
    are deliberately off the tree (e.g. a CPU text encoder whose outputs are moved when used)."""
    device = torch.device(device)
    out: list[str] = []
    for name, p in module.named_parameters():
        if p.device.type != device.type:
            out.append(f"{name} on {p.device}")
    for name, b in module.named_buffers():
        if b.device.type != device.type:
            out.append(f"{name} on {b.device}")
    for mod_name, mod in module.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        for key, value in vars(mod).items():
            if key.startswith("_") or isinstance(value, nn.Module):
                continue  # _parameters/_buffers/_modules and private per-step scratch
            _walk_plain(value, prefix + key, device, out, 0)
    return out
