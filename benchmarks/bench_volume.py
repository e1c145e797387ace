"""Volume rendering speed of the implicit volume geometry (``geometry.name: nerf``), CPU.

A Fourier-MLP density field fitted to a box (a converged-ish field: empty space really empty),
one 64 x 64 view (4096 rays) with 64 stratified samples per ray, textureless shading (normals
from the density gradient, as a lit SDS step needs). Rays per second, forward and forward +
backward, with and without the occupancy grid (its speed-up printed as a ratio in the same
process); ``evaluated`` is the share of samples the field is evaluated at.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_ms, print_table  # noqa: E402

from dreamcs.generate.dmtet import DMTetConfig  # noqa: E402
from dreamcs.generate.nerf import NeRFConfig, NeRFField, render_volume  # noqa: E402
from dreamcs.render import Cameras  # noqa: E402

RES, SAMPLES = 64, 64


def fitted_box_field(steps: int = 150) -> NeRFField:
    torch.manual_seed(0)
    geo = DMTetConfig(grid_resolution=16, encoding="fourier", n_frequencies=4, hidden_dim=64, n_hidden_layers=2)
    field = NeRFField(geo, NeRFConfig(n_samples=SAMPLES, occupancy_resolution=32))
    opt = torch.optim.Adam(field.parameters(), lr=1e-2)
    half = torch.tensor([0.5, 0.3, 0.4])
    for _ in range(steps):
        p = torch.rand(4096, 3) * 2.2 - 1.1
        loss = (field.density(p) - 30.0 * (p.abs() < half).all(-1).float()).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        field.update_occupancy()
    return field


def main() -> None:
    field = fitted_box_field()
    cams = Cameras(torch.tensor([20.0]), torch.tensor([30.0]), torch.tensor([2.6]), torch.tensor([50.0]))
    rays = RES * RES
    rows: list[list[object]] = []
    base: dict[str, float] = {}
    for occ in (False, True):
        def fwd(occ=occ) -> dict:
            with torch.no_grad():
                return render_volume(field, cams, RES, shading="textureless", use_occupancy=occ)

        def fwd_bwd(occ=occ) -> None:
            field.zero_grad(set_to_none=True)
            out = render_volume(field, cams, RES, shading="textureless", use_occupancy=occ, perturb=True)
            (out["image"].mean() + out["orient"]).backward()

        share = fwd()["n_evaluated"] / fwd()["n_samples"]
        t_f, t_fb = median_ms(fwd, repeats=3), median_ms(fwd_bwd, repeats=3)
        key = "grid" if occ else "none"
        base[key] = t_fb
        speedup = f"{base['none'] / t_fb:.2f}x" if occ else "1.00x"
        rows.append([key, f"{share:.2f}", t_f, rays / t_f * 1e3, t_fb, rays / t_fb * 1e3, speedup])
    print_table(f"volume rendering, {RES}x{RES} rays x {SAMPLES} samples, box field "
                f"(occupied cells {field.occupancy.occupied_fraction:.2f}; torch threads {torch.get_num_threads()})",
                ["occupancy", "evaluated", "fwd ms", "fwd rays/s", "fwd+bwd ms", "fwd+bwd rays/s", "fwd+bwd speed-up"],
                rows)


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    main()
