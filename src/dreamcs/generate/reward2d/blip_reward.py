"""BLIP-based image rewards: ImageReward (Xu et al. 2023) and DreamReward's Reward3D (Ye et al. 2024).

Both score an image with BLIP's image-grounded text encoder: the ViT encodes the image, the BERT
text encoder reads the prompt with cross-attention to the image tokens, and the [CLS] feature
(B, 768) goes through a head:

* ``imagereward``: ImageReward's MLP 768 -> 1024 -> 128 -> 64 -> 16 -> 1 per view, then
  (r - 0.16717) / 1.03334; the views' rewards are averaged.
* ``reward3d-fusion`` (DreamReward's ``Reward3D``, "CrossViewFusion"): the 4 views' features go
  through multi-head self-attention across views with a sigmoid gate, are averaged, then the MLP;
  (r - 0.16717) / 5.
* ``reward3d-scorer`` (DreamReward's ``Reward3D_``): the MLP's 128-d features of the 4 views are
  concatenated (512) and scored by 512 -> 256 -> 64 -> 1; (r - 0.16717) / 1.03334.

Built from transformers' ``BlipVisionModel`` / ``BlipTextModel`` and saved as a dreamcs folder:
``config.yaml`` (head, views, BLIP vision / text configs) + ``model.safetensors`` + ``tokenizer/``
(BERT, ``bert-base-uncased`` + BLIP's [DEC] / [ENC] tokens). :func:`convert_blip_reward_checkpoint`
turns the public checkpoints (``ImageReward.pt``, DreamReward's ``Reward3D*.pt``, original BLIP key
names) into that folder.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HEADS = ("imagereward", "reward3d-fusion", "reward3d-scorer")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
REWARD_MEAN = 0.16717362830052426


@dataclass
class BlipRewardConfig:
    """A BLIP reward model: its head and the BLIP configs (transformers' keys)."""

    head: str = "imagereward"
    n_views: int = 4
    image_size: int = 224
    max_length: int = 35
    """Prompt tokens (ImageReward 35, DreamReward 100)."""
    reward_std: float = 1.0333394966054072
    vision: dict[str, Any] = field(default_factory=lambda: dict(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        image_size=224, patch_size=16, layer_norm_eps=1e-6))
    text: dict[str, Any] = field(default_factory=lambda: dict(
        vocab_size=30524, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=512, layer_norm_eps=1e-12, encoder_hidden_size=1024))

    def validate(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"reward_2d head {self.head!r} is not one of {', '.join(HEADS)}")


class RewardMLP(nn.Module):
    """ImageReward's MLP (its dropouts kept so the parameter names match: layers.0, .2, .4, .6, .7)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                                    nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))

    def forward(self, x: Tensor, features_128: bool = False) -> Tensor:
        """(N, dim) -> (N, 1), or its (N, 128) features after the second linear layer."""
        return self.layers[:3](x) if features_128 else self.layers(x)


class CrossViewFusion(nn.Module):
    """DreamReward's cross-view fusion: (N V, D) -> (N, D)."""

    def __init__(self, dim: int, n_views: int, heads: int = 12) -> None:
        super().__init__()
        self.n_views = n_views
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=0.1, batch_first=False)
        self.fusion_gate = nn.Sequential(nn.Linear(2 * dim, dim), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        seq = x.view(-1, self.n_views, x.shape[-1]).transpose(0, 1)  # (V, N, D)
        attn, _ = self.self_attn(seq, seq, seq, need_weights=False)
        gate = self.fusion_gate(torch.cat([seq, attn], dim=-1))
        return (gate * attn + (1 - gate) * seq).mean(dim=0)


class Scorer(nn.Module):
    """DreamReward's Reward3D_ scorer on the concatenated 128-d view features (V * 128 -> 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.dropout1 = nn.Linear(dim, 256), nn.Dropout(0.2)
        self.fc2, self.dropout2 = nn.Linear(256, 64), nn.Dropout(0.2)
        self.fc3 = nn.Linear(64, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc3(self.dropout2(self.fc2(self.dropout1(self.fc1(x)))))


class BlipReward(nn.Module):
    """A BLIP reward model. ``forward(images, input_ids, attention_mask)``: images (M, 3, S, S)
    normalised, ids / mask (M, L) -> rewards: (M,) per image for ``imagereward``, (M / V,) per
    sample of V consecutive views for the Reward3D heads."""

    def __init__(self, config: BlipRewardConfig) -> None:
        super().__init__()
        from transformers import BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel

        config.validate()
        self.config = config
        self.visual_encoder = BlipVisionModel(BlipVisionConfig(**config.vision))
        self.text_encoder = BlipTextModel(BlipTextConfig(**config.text), add_pooling_layer=False)
        dim = int(config.text["hidden_size"])
        self.mlp = RewardMLP(dim)
        if config.head == "reward3d-fusion":
            self.cross_view_adapter = CrossViewFusion(dim, config.n_views)
        elif config.head == "reward3d-scorer":
            self.Scorer = Scorer(128 * config.n_views)

    def features(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """[CLS] of the image-grounded text encoder: (M, D)."""
        img = self.visual_encoder(pixel_values=images).last_hidden_state
        out = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=img,
                                encoder_attention_mask=torch.ones(img.shape[:2], dtype=torch.long, device=img.device),
                                is_decoder=False)
        return out.last_hidden_state[:, 0, :]

    def forward(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        v = self.config.n_views
        if self.config.head != "imagereward" and images.shape[0] % v:
            raise ValueError(f"{self.config.head}: {images.shape[0]} images are not groups of {v} views")
        feats = self.features(images, input_ids, attention_mask)
        if self.config.head == "imagereward":
            r = self.mlp(feats).view(-1)  # one reward per image
        elif self.config.head == "reward3d-fusion":
            r = self.mlp(self.cross_view_adapter(feats)).view(-1)
        else:
            r = self.Scorer(self.mlp(feats, features_128=True).reshape(-1, 128 * v)).view(-1)
        return (r - REWARD_MEAN) / self.config.reward_std


def preprocess(images: Tensor, size: int) -> Tensor:
    """Rendered images (N, H, W, 3) in [0, 1] -> BLIP input (N, 3, size, size), CLIP-normalised
    (bicubic resize, as the rewards' torchvision transform, which for a square render needs no
    centre crop; differentiable)."""
    x = images.permute(0, 3, 1, 2)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    shrink = x.shape[-1] > size or x.shape[-2] > size  # torchvision's Resize antialiases tensors too
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=shrink)
    mean = torch.tensor(CLIP_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


# -- files ------------------------------------------------------------------------------------------
def save_blip_reward(model: BlipReward, tokenizer: Any, folder: str | Path) -> Path:
    """``folder/config.yaml`` + ``model.safetensors`` + ``tokenizer/``."""
    import yaml
    from safetensors.torch import save_file

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump(asdict(model.config), sort_keys=False))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "model.safetensors"))
    tokenizer.save_pretrained(str(root / "tokenizer"))
    return root


def load_blip_reward(folder: str | Path, device: str | torch.device = "cpu") -> tuple[BlipReward, Any]:
    """(model in eval mode, frozen; its BERT tokenizer) from a folder written by :func:`save_blip_reward`."""
    import yaml
    from safetensors.torch import load_file
    from transformers import BertTokenizer

    root = Path(folder)
    for name in ("config.yaml", "model.safetensors", "tokenizer"):
        if not (root / name).exists():
            raise FileNotFoundError(f"{root}: not a 2D reward folder (no {name}; convert a public checkpoint "
                                    "with dreamcs.generate.reward2d.convert_blip_reward_checkpoint)")
    cfg = BlipRewardConfig(**yaml.safe_load((root / "config.yaml").read_text()))
    model = BlipReward(cfg)
    missing, unexpected = model.load_state_dict(load_file(str(root / "model.safetensors")), strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"{root / 'model.safetensors'}: weights do not fit the config "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    tok = BertTokenizer.from_pretrained(str(root / "tokenizer"))
    return model.to(device).eval().requires_grad_(False), tok


_VISION_RENAMES = [
    (r"^blip\.visual_encoder\.", "visual_encoder."),
    (r"^visual_encoder\.blocks\.", "visual_encoder.encoder.layers."),
    (r"\.attn\.proj\.", ".self_attn.projection."),
    (r"\.attn\.qkv\.", ".self_attn.qkv."),
    (r"\.norm1\.", ".layer_norm1."),
    (r"\.norm2\.", ".layer_norm2."),
    (r"^visual_encoder\.norm\.", "visual_encoder.post_layernorm."),
    (r"^visual_encoder\.patch_embed\.proj\.", "visual_encoder.embeddings.patch_embedding."),
    (r"^visual_encoder\.pos_embed$", "visual_encoder.embeddings.position_embedding"),
    (r"^visual_encoder\.cls_token$", "visual_encoder.embeddings.class_embedding"),
]


def rename_blip_key(key: str) -> str | None:
    """An original BLIP / ImageReward / Reward3D key -> ours (None: not part of the reward model)."""
    if key.startswith("blip.text_encoder."):
        return key[len("blip."):]
    if key.startswith(("blip.visual_encoder.", "visual_encoder.")):
        for pat, rep in _VISION_RENAMES:
            key = re.sub(pat, rep, key)
        return key
    if key.startswith(("mlp.", "cross_view_adapter.", "Scorer.")):
        return key
    return None  # e.g. BLIP's ITM / projection heads, the momentum encoders


def convert_blip_reward_checkpoint(checkpoint: str | Path, tokenizer_dir: str | Path, out: str | Path,
                                   config: BlipRewardConfig) -> Path:
    """A public checkpoint (``.pt`` state dict, read with ``weights_only=True``, or ``.safetensors``)
    + a BERT tokenizer folder (bert-base-uncased) -> our folder. The tokenizer gets BLIP's
    ``[DEC]`` bos and ``[ENC]`` tokens (vocabulary 30524)."""
    from transformers import BertTokenizer

    ckpt = Path(checkpoint)
    if ckpt.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(ckpt))
    else:
        state = torch.load(str(ckpt), map_location="cpu", weights_only=True)
        state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
    ours = {}
    for k, v in state.items():
        nk = rename_blip_key(k)
        if nk is not None:
            ours[nk] = v.float()
    model = BlipReward(config)
    missing, unexpected = model.load_state_dict(ours, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"{ckpt}: does not fit head {config.head!r} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    tok = BertTokenizer.from_pretrained(str(tokenizer_dir))
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return save_blip_reward(model, tok, out)
