"""Plain samples from a pixel prior: DDIM with classifier-free guidance.

    images = sample_prior("runs/prior", ["a chair", "a table"], n=4)   # (P, n, C, H, W) in [0, 1]
    save_grid(images, ["a chair", "a table"], "samples.png")

The prior folder is loaded by the ``embedded`` guidance itself, so sampling sees exactly the
weights, schedule and text embeddings that SDS will use.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import Tensor, nn

from dreamcs.utils import atomic_write_bytes


@torch.no_grad()
def ddim_sample(unet: nn.Module, scheduler_config: dict, cond: Tensor, uncond: Tensor,
                cond_mask: Tensor | None = None, uncond_mask: Tensor | None = None, *, steps: int = 50,
                guidance: float = 4.0, generator: torch.Generator | None = None) -> Tensor:
    """DDIM (eta 0) from pure noise: cond, uncond (B, L, D) text tokens, masks (B, L) bool.

    eps = eps_u + guidance * (eps_c - eps_u). Returns images (B, C, S, S) in [0, 1].
    """
    from diffusers import DDIMScheduler

    if steps < 1:
        raise ValueError(f"sampling needs at least one step, got {steps}")
    sched = DDIMScheduler.from_config(scheduler_config)
    sched.set_timesteps(steps)
    cfg = unet.config
    b = cond.shape[0]
    x = torch.randn(b, cfg.in_channels, cfg.sample_size, cfg.sample_size, generator=generator)
    emb = torch.cat([cond, uncond]).float()
    mask = None if cond_mask is None or uncond_mask is None else torch.cat([cond_mask, uncond_mask])
    for t in sched.timesteps:
        tt = torch.full((2 * b,), int(t), dtype=torch.long)
        out = unet(torch.cat([x, x]), tt, encoder_hidden_states=emb, encoder_attention_mask=mask).sample
        eps_c, eps_u = out[:b], out[b:]
        x = sched.step(eps_u + guidance * (eps_c - eps_u), t, x).prev_sample
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def sample_prior(prior: str | Path, prompts: list[str], n: int = 4, *, steps: int = 50,
                 guidance: float = 4.0, seed: int = 0) -> Tensor:
    """``n`` samples per prompt from the prior folder -> (P, n, C, S, S) in [0, 1] (seeded)."""
    from dreamcs.generate.guidance import GuidanceConfig, build_guidance

    if not prompts or n < 1:
        raise ValueError("sampling needs at least one prompt and n >= 1")
    g = build_guidance(GuidanceConfig(name="embedded", pretrained=str(prior)))
    text = g.encode_prompts([p for p in prompts for _ in range(n)])
    gen = torch.Generator().manual_seed(seed)
    images = ddim_sample(g.unet, dict(g.scheduler.config), text.cond, text.uncond, text.cond_mask,
                         text.uncond_mask, steps=steps, guidance=guidance, generator=gen)
    return images.view(len(prompts), n, *images.shape[1:])


def save_grid(images: Tensor, prompts: list[str], path: str | Path, scale: int = 3) -> Path:
    """A PNG grid (atomic): one row per prompt, labelled; images (P, n, C, S, S) in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, n = images.shape[:2]
    fig, axes = plt.subplots(p, n, figsize=(0.9 * n * scale / 3 + 1.4, 0.9 * p * scale / 3), squeeze=False)
    for i in range(p):
        for j in range(n):
            img = images[i, j].permute(1, 2, 0).cpu().numpy()
            ax = axes[i][j]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i][0].set_ylabel(prompts[i], rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout(pad=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())

