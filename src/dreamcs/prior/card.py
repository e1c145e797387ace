"""The prior's model card: MODEL_CARD.md with the data, the model, the training run, a loss curve
(loss.png), DDIM samples per prompt (samples.png) and some training views (views.png)."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dreamcs.utils import atomic_write_bytes, atomic_write_text, read_jsonl

if TYPE_CHECKING:
    from dreamcs.prior.data import ViewDataset
    from dreamcs.prior.train import PriorTrainConfig


def plot_loss(metrics: list[dict], path: str | Path) -> Path:
    """Training loss against step (log scale), written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    steps = [r["step"] for r in metrics]
    loss = [r["loss"] for r in metrics]
    ax.plot(steps, loss, lw=1)
    if loss and min(loss) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("noise MSE")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def write_model_card(out: str | Path, cfg: PriorTrainConfig, data: ViewDataset, *, step: int, n_params: int) -> Path:
    """Write loss.png, samples.png, views.png and MODEL_CARD.md into the prior folder ``out``."""
    from dreamcs.prior.sample import sample_prior, save_grid

    out = Path(out)
    metrics = read_jsonl(out / "metrics.jsonl")
    plot_loss(metrics, out / "loss.png")
    prompts = list(cfg.card_prompts)
    samples = sample_prior(out, prompts, cfg.card_samples, steps=cfg.card_steps, guidance=cfg.card_guidance,
                           seed=cfg.seed)
    save_grid(samples, prompts, out / "samples.png")
    # one training view of each of the first meshes, to compare the samples with
    shown = [int((data.mesh_index == k).nonzero()[0][0]) for k in range(min(8, len(data.ids)))]
    views = torch.from_numpy(data.images[shown]).view(1, len(shown), 1, *data.images.shape[1:])
    save_grid(views, ["training views"], out / "views.png")

    cats = Counter(data.categories)
    first, last = (metrics[0], metrics[-1]) if metrics else ({}, {})
    hours = last.get("elapsed_s", 0.0) / 3600.0
    d = cfg.data
    text = f"""# dreamcs embedded prior

A small text-conditioned pixel diffusion model, trained offline on renders of the embedded 3D-MeshPref
meshes. It is the `embedded` guidance backend (`guidance.name=embedded`) for CPU text-to-3D (the
`dmtet-embedded` preset). Like Stable Diffusion it is **not camera-aware**, on purpose: SDS with it
shows the Janus problem that the 3D reward is meant to fix.

## Model
- diffusers `UNet2DConditionModel`: {cfg.data.image_size}x{cfg.data.image_size}, 1 channel (grey), block
  channels {list(cfg.block_out_channels)}, one layer per block, cross-attention on all levels but the
  first and in the middle block; {n_params / 1e6:.2f} M parameters.
- Text: `{cfg.text_encoder}` token embeddings, {cfg.max_tokens} tokens with a mask.
- Noise: DDPM, {cfg.num_train_timesteps} steps, `{cfg.beta_schedule}` schedule, epsilon prediction.
  Images are `2 x - 1` of the grey level.

## Data
- {len(data.ids)} meshes, {d.n_views} random views each ({len(data)} images): azimuth
  {d.azimuth_range[0]:g}-{d.azimuth_range[1]:g}, elevation {d.elevation_range[0]:g}..{d.elevation_range[1]:g}
  degrees, distance {d.distance:g}, fov {d.fov:g}, y up; flat grey Lambertian lit from the camera on
  black, rendered at {d.image_size * d.supersample} px by `dreamcs.render` and shrunk to {d.image_size} px
  (what the SDS renderer of `dmtet-embedded` produces). Mirrored left-right at random: {cfg.hflip}.
- Captions: each mesh's caption; {cfg.p_blank:.0%} blanked (for classifier-free guidance),
  {cfg.p_category:.0%} replaced by "a {{category}}" ({len(cats)} categories; most common:
  {", ".join(f"{c} ({k})" for c, k in cats.most_common(8))}).
- Mesh sources and licences: `dreamcs/assets/meshpref/CREDITS.md`.

## Training
- {step} steps of batch {cfg.batch_size} (AdamW lr {cfg.lr:g}, {cfg.warmup_steps} warm-up steps, weight
  decay {cfg.weight_decay:g}, gradient clip {cfg.grad_clip:g}); seed {cfg.seed}; {hours:.2f} h of training.
- The weights are an EMA (decay {cfg.ema_decay:g}, warmed up).
- Loss {first.get("loss", float("nan")):.4f} at step {first.get("step", 0)} ->
  {last.get("loss", float("nan")):.4f} at step {last.get("step", 0)}.

![loss](loss.png)

## Samples
DDIM, {cfg.card_steps} steps, classifier-free guidance {cfg.card_guidance:g}, seed {cfg.seed}; one row per prompt:

![samples](samples.png)

Training views of the first meshes, for comparison:

![views](views.png)

## Limits
- {d.image_size} px grey silhouettes and shading, from {len(data.ids)} meshes: categories with one or two meshes
  are weak, and it knows nothing outside them. For real use take `guidance.name=stable-diffusion`.
- Not camera-aware: it has no notion of front or back.
"""
    return atomic_write_text(out / "MODEL_CARD.md", text)


#: what ships from a training run (no checkpoints, metrics or caches)
SHIP = ("unet", "scheduler", "prior.yaml", "MODEL_CARD.md", "loss.png", "samples.png", "views.png")


def export_prior(run: str | Path, dest: str | Path, max_mb: float = 50.0) -> Path:
    """Copy a finished run's prior folder (``SHIP``) to ``dest`` (e.g. ``dreamcs/assets/prior``),
    replacing what is there; refuses a run without a prior or one over ``max_mb``."""
    import shutil

    run, dest = Path(run), Path(dest)
    missing = [n for n in SHIP[:3] if not (run / n).exists()]
    if missing:
        raise FileNotFoundError(f"{run}: not a finished prior run (missing {', '.join(missing)})")
    size = sum(f.stat().st_size for n in SHIP if (run / n).exists()
               for f in ([run / n] if (run / n).is_file() else (run / n).rglob("*")) if f.is_file())
    if size > max_mb * 2**20:
        raise ValueError(f"{run}: the prior is {size / 2**20:.1f} MB, over the {max_mb:g} MB limit for shipping")
    stage = dest.with_name(f".{dest.name}.export")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for n in SHIP:
        src = run / n
        if src.is_dir():
            shutil.copytree(src, stage / n)
        elif src.is_file():
            shutil.copy2(src, stage / n)
    shutil.rmtree(dest, ignore_errors=True)
    stage.rename(dest)
    return dest
