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


@torch.no_grad()
def roundtrip_prior(prior: str | Path, images: Tensor, t_range: tuple[float, float] = (0.3, 0.6), *,
                    steps: int = 20, seed: int = 0, batch: int = 64) -> Tensor:
    """Noise images to a random level t/T in ``t_range`` (one level per batch of ``batch``) and denoise
    them back with the prior, on the CPU, without a prompt (DDIM, eta 0, the tail of a ``steps``-step
    schedule; SDEdit). The object's coarse shape survives, its rendering becomes the prior's own (soft
    edges, textures), so a classifier trained on such images reads the prior's samples in their own
    style. images (N, C, S, S) in [0, 1] -> same.
    """
    from diffusers import DDIMScheduler

    from dreamcs.generate.guidance import GuidanceConfig, build_guidance

    lo, hi = t_range
    if not 0.0 < lo <= hi <= 1.0 or steps < 1:
        raise ValueError(f"round trip: need 0 < lo <= hi <= 1 and steps >= 1; got {t_range}, {steps}")
    g = build_guidance(GuidanceConfig(name="embedded", pretrained=str(prior)))
    sched = DDIMScheduler.from_config(dict(g.scheduler.config))
    sched.set_timesteps(steps)
    n_train = sched.config.num_train_timesteps
    text = g.encode_prompts([""])
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty_like(images)
    for i in range(0, len(images), batch):
        x0 = images[i : i + batch] * 2.0 - 1.0
        b = x0.shape[0]
        # one level per batch keeps DDIM batched; levels still spread over the whole range
        level = lo + (hi - lo) * float(torch.rand((), generator=gen))
        ts = sched.timesteps[sched.timesteps <= int(level * (n_train - 1))]
        if len(ts) == 0:
            out[i : i + b] = images[i : i + b]
            continue
        abar = sched.alphas_cumprod[int(ts[0])]
        x = abar.sqrt() * x0 + (1 - abar).sqrt() * torch.randn(x0.shape, generator=gen)
        emb = text.uncond.expand(b, -1, -1).float()
        mask = None if text.uncond_mask is None else text.uncond_mask.expand(b, -1)
        for t in ts:
            tt = torch.full((b,), int(t), dtype=torch.long)
            eps = g.unet(x, tt, encoder_hidden_states=emb, encoder_attention_mask=mask).sample
            x = sched.step(eps, t, x).prev_sample
        out[i : i + b] = ((x + 1.0) / 2.0).clamp(0.0, 1.0)
    return out


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

