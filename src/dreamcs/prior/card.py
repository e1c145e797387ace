"""The prior's model card: MODEL_CARD.md with the data, the model, the training run, a loss curve
(loss.png), DDIM samples per prompt (samples.png) and some training views (views.png)."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from dreamcs.utils import atomic_write_bytes, atomic_write_text, read_jsonl

if TYPE_CHECKING:
    from dreamcs.prior.config import PriorTrainConfig
    from dreamcs.prior.data import ViewDataset


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
    # the first view of 8 objects spread over the data (real meshes come first, then procedural)
    picks = np.unique(np.linspace(0, len(data.ids) - 1, min(8, len(data.ids))).round().astype(int))
    shown = [int(np.searchsorted(data.mesh_index, k)) for k in picks]  # mesh_index is sorted
    views = torch.from_numpy(data.images[shown]).view(1, len(shown), 1, *data.images.shape[1:])
    save_grid(views, ["training views"], out / "views.png")

    cats = Counter(data.categories)
    first, last = (metrics[0], metrics[-1]) if metrics else ({}, {})
    hours = last.get("elapsed_s", 0.0) / 3600.0
    init_line = "" if not cfg.init_from else (
        f"\n- Started from the UNet of `{cfg.init_from}` (`init_from`; `embedded`: the prior the package held"
        "\n  when training began), not from scratch; the step count above is this run's only.")
    text = f"""# dreamcs embedded prior

A small text-conditioned pixel diffusion model, trained offline on renders of licensed real meshes
and of the procedural shape library. It is the `embedded` guidance backend (`guidance.name=embedded`)
for CPU text-to-3D (the `dmtet-embedded` preset). Like Stable Diffusion it is **not camera-aware**
beyond the view words of its captions ("front view", ...), on purpose: SDS with it shows the Janus
problem that the 3D reward is meant to fix.

## Model
- diffusers `UNet2DConditionModel`: {cfg.data.image_size}x{cfg.data.image_size}, 1 channel (grey), block
  channels {list(cfg.block_out_channels)}, one layer per block, cross-attention on all levels but the
  first and in the middle block; {n_params / 1e6:.2f} M parameters.
- Text: `{cfg.text_encoder}` token embeddings, {cfg.max_tokens} tokens with a mask.
- Noise: DDPM, {cfg.num_train_timesteps} steps, `{cfg.beta_schedule}` schedule, epsilon prediction.
  Images are `2 x - 1` of the grey level.

## Data
{data_section(cfg, data)}
- Captions: each object's caption; {cfg.p_blank:.0%} blanked (for classifier-free guidance),
  {cfg.p_category:.0%} replaced by "a {{category}}" ({len(cats)} categories; most common:
  {", ".join(f"{c} ({k})" for c, k in cats.most_common(8))}); {cfg.p_view:.0%} of the others end in the
  view suffix SDS appends (", front view" / ", side view" / ", back view" / ", overhead view", from the
  camera's azimuth and elevation).
- Mesh sources and licences: `dreamcs/assets/meshpref/CREDITS.md`; procedural objects:
  `dreamcs.data.procedural`. None of `dreamcs.data.validation.HELD_OUT_OBJECTS` (nor the meshes of
  `dreamcs.prior.HELD_OUT_PROMPTS`) is in the data.

## Training
- {step} steps of batch {cfg.batch_size} (AdamW lr {cfg.lr:g}, {cfg.warmup_steps} warm-up steps, weight
  decay {cfg.weight_decay:g}, gradient clip {cfg.grad_clip:g}); seed {cfg.seed}; {hours:.2f} h of training.
- The weights are an EMA (decay {cfg.ema_decay:g}, warmed up).{init_line}
- Loss {first.get("loss", float("nan")):.4f} at step {first.get("step", 0)} ->
  {last.get("loss", float("nan")):.4f} at step {last.get("step", 0)}.

![loss](loss.png)

## Samples
DDIM, {cfg.card_steps} steps, classifier-free guidance {cfg.card_guidance:g}, seed {cfg.seed}; one row per prompt:

![samples](samples.png)

Training views of eight objects spread over the data (real meshes first), for comparison:

![views](views.png)

{check_section(out)}
{zero_shot_section(out)}
## Limits
- {cfg.data.image_size} px grey silhouettes and shading: categories with few objects are weak, and it
  knows nothing outside its data. For real use take `guidance.name=stable-diffusion`.
- Not camera-aware beyond the view words: it has no notion of an object's front.
"""
    return atomic_write_text(out / "MODEL_CARD.md", text)


def data_section(cfg: PriorTrainConfig, data: ViewDataset) -> str:
    """The card's lines on what was rendered, and how."""
    from dreamcs.prior.views import LIGHTS, framing_radius

    d = cfg.data
    n_real = sum(s == "real" for s in data.sources)
    n_proc = len(data.sources) - n_real
    lights = Counter(LIGHTS[int(k)] for k in data.light)
    radius = framing_radius(d)
    framing = ("scaled into the [-1, 1] box (longest side 2; fills the frame)" if radius is None else
               f"scaled so that the bounding sphere has radius {radius:.3f}: at the closest camera the whole "
               f"object fills at most {1 - d.margin:.0%} of the half-frame")
    return f"""- {len(data.ids)} objects, {len(data)} views: {n_real} real meshes x {d.n_views} views, {n_proc} procedural
  objects (library seed {d.procedural_seed}) x {d.procedural_views} views. Cameras: azimuth
  {d.azimuth_range[0]:g}-{d.azimuth_range[1]:g}, elevation {d.elevation_range[0]:g}..{d.elevation_range[1]:g} degrees,
  distance {d.distance_range[0]:g}-{d.distance_range[1]:g}, fov {d.fov_range[0]:g}-{d.fov_range[1]:g}, y up (the
  `dmtet-embedded` recipe's). Objects {framing}.
- Flat grey Lambertian (ambient 0.2) on black, rendered at {d.image_size * d.supersample} px by
  `dreamcs.render` and shrunk to {d.image_size} px as guidance shrinks SDS renders. Light per view:
  {", ".join(f"{k} {v / max(1, len(data)):.0%}" for k, v in sorted(lights.items()))} (headlight: the recipes'
  `render.light: camera`; random: DreamFusion's point light, `render.light: random`). Mirrored left-right at
  random: {cfg.hflip}."""


_CHECK_BEGIN, _CHECK_END = "<!-- prior-check -->", "<!-- /prior-check -->"


def check_section(out: str | Path) -> str:
    """The recognition table of ``out/check.json`` (``dreamcs prior check``), between markers, or a
    line saying how to make it."""
    import json

    path = Path(out) / "check.json"
    if not path.is_file():
        body = "## Recognition check\nNot run yet: `dreamcs prior check --prior PRIOR` writes it here.\n"
        return f"{_CHECK_BEGIN}\n{body}{_CHECK_END}\n"
    r = json.loads(path.read_text(encoding="utf-8"))
    st = r["settings"]
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.0%}"

    rows = "".join(
        f"| {c} | {v['recognised']:.0%} | {pct(v.get('recognised_calibrated'))} | {v['most_confused'] or '-'} | "
        f"{v['judge_real_meshes']} real + {v['judge_procedural']} procedural |\n" for c, v in sorted(r["categories"].items()))
    rt = st.get("roundtrip") or []
    trip = (f"; it also learns from each render noised to t/T {rt[0]:g}-{rt[1]:g} and denoised by this prior without a "
            "prompt, so that it knows the prior's own rendering of a shape") if rt else ""
    trip_acc = (f" ({r['judge_accuracy_roundtrip']:.0%} after the round trip)"
                if r.get("judge_accuracy_roundtrip") is not None else "")
    body = f"""## Recognition check
`dreamcs prior check`: {st['samples']} samples per category (prompt "a {{category}}", DDIM {st['steps']} steps,
guidance {st['guidance']:g}, seed {st['seed']}), each judged by a small CNN trained on renders (the prior's own
view settings) of objects the prior never saw: {r['judge_real_meshes']} held-out real meshes where a category has
one, and {st['procedural']} procedural objects per category from library seed {st['procedural_seed']} (the prior's
data uses another){trip}. The judge's own accuracy on unseen procedural objects: {r['judge_accuracy']:.0%}{trip_acc}
(chance {1 / max(1, len(r['categories'])):.0%}). **Mean share recognised: {r['mean_recognised']:.0%}; with the judge's bias removed:
{pct(r.get('mean_recognised_calibrated'))}** (chance for a prior that ignores its prompt; 0 for one that draws nothing).
The plain verdict sends samples unlike every training render to one sink class; "bias removed" subtracts each
class's mean log-probability over all the samples first, so it asks whether a sample looks more like its
category than the prior's other samples do.

| category | recognised | bias removed | most often taken for | judge's data |
|---|---|---|---|---|
{rows}
![check samples](check.png)
"""
    return f"{_CHECK_BEGIN}\n{body}{_CHECK_END}\n"


_ZERO_BEGIN, _ZERO_END = "<!-- prior-zero-shot -->", "<!-- /prior-zero-shot -->"


def zero_shot_section(out: str | Path) -> str:
    """The diffusion-classifier table of ``out/zero_shot.json`` (``dreamcs prior zero-shot``), between
    markers, or a line saying how to make it."""
    import json

    path = Path(out) / "zero_shot.json"
    if not path.is_file():
        body = "## Zero-shot check\nNot run yet: `dreamcs prior zero-shot --prior PRIOR` writes it here.\n"
        return f"{_ZERO_BEGIN}\n{body}{_ZERO_END}\n"
    r = json.loads(path.read_text(encoding="utf-8"))
    st = r["settings"]
    rows = "".join(f"| {c} | {v['views']} | {v['recognised']:.0%} | {v['mean_rank']:.1f} | {v['most_confused'] or '-'} |\n"
                   for c, v in sorted(r["categories"].items()))
    real = ("" if r["real_recognised"] is None else
            f"; on the {r['real_views']} views of held-out real meshes alone: **{r['real_recognised']:.0%}**")
    body = f"""## Zero-shot check
`dreamcs prior zero-shot`: the prior as a diffusion classifier. Renders (its own view settings) of objects it
never saw ({st['procedural']} procedural objects per category from library seed {st['procedural_seed']} x {st['views']}
views, and the held-out real meshes that name a category x {st['real_views']} views) are noised at t/T
{', '.join(f'{v:g}' for v in st['levels'])} with the same noise for every prompt; the category prompt whose noise
prediction is closest wins. This is the conditional prediction SDS follows, so it asks whether the prompt pulls a
render of an unseen object towards its category. **Mean share recognised per category: {r['mean_recognised']:.0%}**
(chance {r['chance']:.0%}){real}; mean rank of the right prompt {r['mean_rank']:.1f} (0 = best of {len(r['categories'])}).

| category | views | recognised | mean rank | most often taken for |
|---|---|---|---|---|
{rows}"""
    return f"{_ZERO_BEGIN}\n{body}{_ZERO_END}\n"


def _put_section(out: str | Path, section: str, begin: str, end: str) -> Path:
    """Replace the card's section between ``begin`` / ``end`` or insert it before "## Limits"."""
    card = Path(out) / "MODEL_CARD.md"
    text = card.read_text(encoding="utf-8")
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + section + tail
    elif "## Limits" in text:
        head, tail = text.split("## Limits", 1)
        text = head + section + "## Limits" + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    return atomic_write_text(card, text)


def write_check_section(out: str | Path) -> Path:
    """Put the recognition table (from ``out/check.json``) into ``out/MODEL_CARD.md``."""
    return _put_section(out, check_section(out), _CHECK_BEGIN, _CHECK_END)


def write_zero_shot_section(out: str | Path) -> Path:
    """Put the zero-shot table (from ``out/zero_shot.json``) into ``out/MODEL_CARD.md``."""
    return _put_section(out, zero_shot_section(out), _ZERO_BEGIN, _ZERO_END)


#: what ships from a training run (no checkpoints, metrics or caches)
SHIP = ("unet", "scheduler", "prior.yaml", "MODEL_CARD.md", "loss.png", "samples.png", "views.png", "config.yaml",
        "check.json", "check.png", "zero_shot.json")


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
    _drop_local_paths(stage)
    shutil.rmtree(dest, ignore_errors=True)
    stage.rename(dest)
    return dest


def _drop_local_paths(folder: Path) -> None:
    """Paths of the machine that trained the prior mean nothing where it ships: the view cache in
    config.yaml and the checked folder in check.json become null."""
    import json
    import re

    cfg = folder / "config.yaml"
    if cfg.is_file():
        cfg.write_text(re.sub(r"(?m)^cache_dir: .*$", "cache_dir: null", cfg.read_text(encoding="utf-8")),
                       encoding="utf-8")
    check = folder / "check.json"
    if check.is_file():
        r = json.loads(check.read_text(encoding="utf-8"))
        r["prior"] = None
        check.write_text(json.dumps(r, indent=1) + "\n", encoding="utf-8")
