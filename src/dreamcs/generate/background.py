"""The background behind coloured renders: a solid colour, or a tiny MLP of the view direction
(threestudio's neural environment map), learned with the field so that SDS can explain the
background without painting it onto the object.

    bg = Background("mlp")                        # or Background("solid", colour=(0.5, 0.5, 0.5))
    rgb = bg(cameras, 64, 64)                     # (B, 64, 64, 3) in [0, 1]
    image = out["image"] + (1 - out["alpha"]) * rgb   # out rendered over black
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dreamcs.generate.encoding import FourierEncoding, mlp


def ray_directions(cameras, height: int, width: int) -> torch.Tensor:
    """Unit world directions (B, H, W, 3) through the pixel centres (row 0 at the top)."""
    _, right, up, forward = cameras.frames()
    tan = torch.tan(torch.deg2rad(cameras.fov) / 2).view(-1, 1, 1, 1)
    dev = forward.device
    ys = 1.0 - (torch.arange(height, dtype=torch.float32, device=dev) + 0.5) * 2.0 / height  # NDC y, +1 at the top
    xs = (torch.arange(width, dtype=torch.float32, device=dev) + 0.5) * 2.0 / width - 1.0
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    x = (x * width / height).view(1, height, width, 1) * tan
    y = y.view(1, height, width, 1) * tan
    d = forward.view(-1, 1, 1, 3) + x * right.view(-1, 1, 1, 3) + y * up.view(-1, 1, 1, 3)
    return torch.nn.functional.normalize(d, dim=-1)


class Background(nn.Module):
    """``solid``: a fixed colour; ``mlp``: sigmoid(MLP(Fourier(direction))), trainable."""

    def __init__(self, kind: str = "solid", colour: Sequence[float] = (0.0, 0.0, 0.0), hidden_dim: int = 32,
                 n_frequencies: int = 4) -> None:
        super().__init__()
        if kind not in ("solid", "mlp"):
            raise ValueError(f"render.background_model: {kind!r} is not solid or mlp")
        self.kind = kind
        self.register_buffer("colour", torch.tensor([float(c) for c in colour], dtype=torch.float32), persistent=False)
        if kind == "mlp":
            self.encoding = FourierEncoding(n_frequencies, 1.0)
            self.net = mlp(self.encoding.out_dim, 3, hidden_dim, 2)
            with torch.no_grad():  # start at the solid colour: sigmoid^-1 of it as the output bias
                self.net[-1].weight.mul_(0.1)
                self.net[-1].bias.copy_(torch.logit(self.colour.clamp(0.05, 0.95)))

    def forward(self, cameras, height: int, width: int) -> torch.Tensor:
        """(B, H, W, 3) background colours for ``cameras`` at ``height`` x ``width``."""
        device = self.colour.device
        b = len(cameras)
        if self.kind == "solid":
            return self.colour.view(1, 1, 1, 3).expand(b, height, width, 3)
        d = ray_directions(cameras.to(device), height, width)
        # directions live on the unit sphere: scale them into the encoding's bounds with some margin
        out = self.net(self.encoding(d.reshape(-1, 3) / math.sqrt(3.0)))
        return torch.sigmoid(out).view(b, height, width, 3)
