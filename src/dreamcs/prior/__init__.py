"""The offline pixel prior: a small text-conditioned diffusion UNet trained here on renders of
licensed real meshes and the procedural shape library, shipped as the ``embedded`` guidance backend.

    items = view_items(ViewDataConfig(procedural=3300))       # sources.py: what is rendered (+ HELD_OUT_PROMPTS)
    views = build_view_dataset(ViewDataConfig(), cache_dir)   # data.py + views.py: framed renders, cached
    PriorTrainer(PriorTrainConfig(), out_dir).run()           # train.py: checkpoints, EMA, save_prior
    images = sample_prior(out_dir, ["a chair"], n=4)          # sample.py: DDIM + classifier-free guidance
    write_model_card(out_dir, ...)                            # card.py: loss curve, sample grid, card
    check_prior(out_dir, CheckConfig())                       # check.py: share of samples recognised per category

Heavy imports (diffusers, transformers, matplotlib) happen inside the functions that need them.
"""

from dreamcs.prior.data import ViewDataConfig, ViewDataset, build_view_dataset, category_of
from dreamcs.prior.sources import HELD_OUT_PROMPTS, HeldOutPrompt, view_items, write_heldout_gt
from dreamcs.prior.train import PriorTrainConfig, PriorTrainer

__all__ = [
    "HELD_OUT_PROMPTS",
    "HeldOutPrompt",
    "PriorTrainConfig",
    "PriorTrainer",
    "ViewDataConfig",
    "ViewDataset",
    "build_view_dataset",
    "category_of",
    "view_items",
    "write_heldout_gt",
]
