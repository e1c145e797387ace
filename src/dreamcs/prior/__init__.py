"""The offline pixel prior: a small text-conditioned diffusion UNet trained here on renders of the
embedded meshes, shipped as the ``embedded`` guidance backend.

    views = build_view_dataset(ViewDataConfig(), cache_dir)   # data.py: renders, cached .npz
    PriorTrainer(PriorTrainConfig(), out_dir).run()           # train.py: checkpoints, EMA, save_prior
    images = sample_prior(out_dir, ["a chair"], n=4)          # sample.py: DDIM + classifier-free guidance
    write_model_card(out_dir, ...)                            # card.py: loss curve, sample grid, card

Heavy imports (diffusers, transformers, matplotlib) happen inside the functions that need them.
"""

from dreamcs.prior.data import ViewDataConfig, ViewDataset, build_view_dataset, category_of
from dreamcs.prior.train import PriorTrainConfig, PriorTrainer

__all__ = [
    "PriorTrainConfig",
    "PriorTrainer",
    "ViewDataConfig",
    "ViewDataset",
    "build_view_dataset",
    "category_of",
]
