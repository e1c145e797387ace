"""Input encodings and a small MLP for implicit fields, in plain torch.

- :class:`FourierEncoding`: NeRF's positional encoding, sin/cos of 2^k * pi * x.
- :class:`HashGridEncoding`: Instant-NGP's multiresolution hash grid (trilinear interpolation of
  learned features from L levels, a dense table on coarse levels and a spatial hash on fine ones).
  tiny-cuda-nn is used instead only when asked for (``use_tcnn``) and importable.

Inputs are points (N, 3) in [-bound, bound]^3.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_PRIMES = (1, 2654435761, 805459861)
_CORNERS = torch.tensor([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)], dtype=torch.long)


class FourierEncoding(nn.Module):
    """x (N, 3) -> (N, 3 + 6 * n_frequencies): x, sin(2^k pi x / bound), cos(2^k pi x / bound)."""

    def __init__(self, n_frequencies: int = 6, bound: float = 1.0) -> None:
        super().__init__()
        self.bound = bound
        self.register_buffer("freqs", (2.0 ** torch.arange(n_frequencies)) * math.pi, persistent=False)
        self.out_dim = 3 + 6 * n_frequencies

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = (x / self.bound).unsqueeze(-1) * self.freqs.to(x.dtype)  # (N, 3, K)
        return torch.cat([x / self.bound, xb.sin().flatten(1), xb.cos().flatten(1)], 1)


class HashGridEncoding(nn.Module):
    """x (N, 3) -> (N, n_levels * n_features), Instant-NGP style, in plain torch."""

    def __init__(
        self,
        n_levels: int = 8,
        n_features: int = 2,
        log2_table_size: int = 16,
        base_resolution: int = 8,
        max_resolution: int = 256,
        bound: float = 1.0,
    ) -> None:
        super().__init__()
        if n_levels < 1 or n_features < 1 or not 4 <= log2_table_size <= 24:
            raise ValueError("hash grid: n_levels, n_features >= 1 and log2_table_size in [4, 24]")
        self.bound, self.table_size, self.n_features = bound, 2**log2_table_size, n_features
        growth = math.exp(math.log(max_resolution / base_resolution) / max(n_levels - 1, 1))
        self.resolutions = [int(math.floor(base_resolution * growth**i)) for i in range(n_levels)]
        self.tables = nn.Parameter(torch.empty(n_levels, self.table_size, n_features).uniform_(-1e-4, 1e-4))
        self.out_dim = n_levels * n_features

    def _index(self, corner: torch.Tensor, res: int) -> torch.Tensor:
        """Table rows (N, 8) of integer lattice corners (N, 8, 3) at resolution ``res``."""
        if (res + 1) ** 3 <= self.table_size:  # coarse level: one row per lattice point
            return corner[..., 0] * (res + 1) ** 2 + corner[..., 1] * (res + 1) + corner[..., 2]
        h = corner[..., 0] * _PRIMES[0]
        h = h ^ (corner[..., 1] * _PRIMES[1])
        h = h ^ (corner[..., 2] * _PRIMES[2])
        return h % self.table_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = ((x / self.bound + 1.0) / 2.0).clamp(0.0, 1.0)  # (N, 3) in [0, 1]
        corners = _CORNERS.to(x.device)
        feats = []
        for level, res in enumerate(self.resolutions):
            pos = u * res
            base = pos.detach().floor().long().clamp(max=res - 1)
            frac = pos - base.to(pos.dtype)  # (N, 3), differentiable in x
            corner = base.unsqueeze(1) + corners  # (N, 8, 3)
            w = torch.where(corners.bool(), frac.unsqueeze(1), 1.0 - frac.unsqueeze(1)).prod(-1)  # (N, 8)
            rows = self._index(corner, res)
            f = self.tables[level].index_select(0, rows.view(-1)).view(-1, 8, self.n_features)
            feats.append((w.unsqueeze(-1) * f.to(x.dtype)).sum(1))
        return torch.cat(feats, 1)


class TcnnEncoding(nn.Module):
    """tiny-cuda-nn's fused hash grid (CUDA only); imported when built."""

    def __init__(self, config: dict, bound: float = 1.0) -> None:
        super().__init__()
        try:
            import tinycudann as tcnn
        except ImportError as e:
            raise ImportError("use_tcnn=True needs the tinycudann package and a CUDA GPU") from e
        self.bound, self.config = bound, dict(config)  # config: compared when weights are copied across fields
        self.enc = tcnn.Encoding(3, config)
        self.out_dim = self.enc.n_output_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(((x / self.bound + 1.0) / 2.0).clamp(0.0, 1.0)).to(x.dtype)


def mlp(in_dim: int, out_dim: int, hidden_dim: int = 64, n_hidden_layers: int = 2) -> nn.Sequential:
    """ReLU MLP with ``n_hidden_layers`` hidden layers of width ``hidden_dim``."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(d, hidden_dim), nn.ReLU(inplace=True)]
        d = hidden_dim
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)
