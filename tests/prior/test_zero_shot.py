"""`dreamcs prior zero-shot`: the prior as a diffusion classifier of renders of unseen objects."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from dreamcs.prior.data import ViewDataConfig
from dreamcs.prior.train import PriorTrainConfig, PriorTrainer
from dreamcs.prior.zero_shot import ZeroShotConfig, denoising_errors, zero_shot_check


class TemplateDenoiser(nn.Module):
    """Prompt p means "the clean image is template p": it predicts the noise that would be left
    if that were so. An image equal to template k is denoised exactly only under prompt k."""

    def __init__(self, templates: torch.Tensor, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        self.templates, self.abar = templates, alphas_cumprod

    def forward(self, x, t, encoder_hidden_states, encoder_attention_mask=None):
        which = encoder_hidden_states[:, 0, 0].long()  # the prompt's index, written in its tokens
        a = self.abar[t].view(-1, 1, 1, 1)
        return SimpleNamespace(sample=(x - a.sqrt() * self.templates[which]) / (1 - a).sqrt())


def test_the_prompt_that_names_the_image_denoises_it_best():
    g = torch.Generator().manual_seed(0)
    templates = torch.rand(5, 1, 8, 8, generator=g) * 2 - 1
    abar = torch.linspace(0.999, 0.01, 1000)
    cond = torch.arange(5.0).view(5, 1, 1).expand(5, 3, 4).contiguous()
    images = ((templates[[3, 0, 4, 4, 1]] + 1) / 2)  # in [0, 1], as renders are
    errors = denoising_errors(TemplateDenoiser(templates, abar), abar, images, cond, None, [0.2, 0.6], batch=7)
    assert errors.shape == (5, 5)
    assert errors.argmin(1).tolist() == [3, 0, 4, 4, 1]
    right = torch.zeros(5, 5, dtype=torch.bool)
    right[torch.arange(5), torch.tensor([3, 0, 4, 4, 1])] = True
    assert errors[right].max() < 1e-8 and errors[~right].min() > 1e-3


@pytest.fixture(scope="module")
def prior(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prior") / "run"
    data = ViewDataConfig(real=False, procedural=3, procedural_views=2, image_size=16, margin=0.1)
    cfg = PriorTrainConfig(data=data, text_encoder="hash:32", block_out_channels=[8, 16], steps=2, batch_size=4,
                           warmup_steps=1, cache_dir=str(out.parent / "cache"), card=False)
    PriorTrainer(cfg, out, show_progress=False).run()
    return out


def test_check_writes_a_verdict_per_category(prior, tmp_path):
    cfg = ZeroShotConfig(categories=["bed", "mug"], procedural=2, views=1, meshes=str(tmp_path))  # no real meshes
    result = zero_shot_check(prior, cfg, log=lambda *_: None)
    saved = json.loads((prior / "zero_shot.json").read_text())
    assert saved == result and set(result["categories"]) == {"bed", "mug"} and result["chance"] == 0.5
    assert result["real_recognised"] is None and all(r["views"] == 2 for r in result["categories"].values())
    # two prompts: the right one ranks 1 exactly where the verdict is wrong
    assert result["mean_rank"] == pytest.approx(1.0 - result["procedural_recognised"])
    views = result["views"]
    assert len(views["object"]) == len(views["label"]) == len(views["predicted"]) == 4
    right = [p == lab for p, lab in zip(views["predicted"], views["label"], strict=True)]
    assert sum(right) / 4 == pytest.approx(result["procedural_recognised"])
    (prior / "MODEL_CARD.md").write_text("# A prior\n\n## Limits\n- small\n")
    for _ in range(2):  # the card gets the table once, before its limits, and a rerun replaces it
        zero_shot_check(prior, cfg, log=lambda *_: None)
    card = (prior / "MODEL_CARD.md").read_text()
    assert card.count("## Zero-shot check") == 1 and card.index("| bed | 2 |") < card.index("## Limits")
    for bad, match in ((dict(levels=[1.2]), "levels"), (dict(categories=["dragon"]), "unknown"),
                       (dict(meshes=str(tmp_path / "nowhere")), "does not exist")):
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            zero_shot_check(prior, ZeroShotConfig(**{**dict(categories=["bed", "mug"]), **bad}), log=lambda *_: None)
