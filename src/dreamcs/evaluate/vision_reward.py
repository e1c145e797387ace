"""VR: VisionReward (Xu et al. 2024) on an asset's turntable views, any transformers VLM answering.

VisionReward-Image scores an image with a checklist of yes/no questions ("Is the image clear?",
"Does the image avoid being fragmented?", ...) answered by a vision-language model, and a linear
model over the answers (``assets/vision_reward/checklist.yaml``, from THUDM/VisionReward):

    VR(view) = w_a * P(yes | view, 'Does this figure show "{prompt}"? ...')      # alignment (VQAScore)
               + sum_i w_i * g_i * a_i + b
    a_i = +1 if log P(yes) > log P(no) at the answer position, else -1            # answers="hard"
    a_i = tanh((log P(yes) - log P(no)) / 2) = P(yes) - P(no) over the two       # answers="soft"
    g_i = (a_gate + 1) / 2 for a question gated by a gate ("Is there a human face?"), else 1
    VR(asset) = mean over the views

Hard answers are the source's: it samples with top_k=1 (greedy) and counts ``yes`` as +1, anything
else as -1; a gate answered no zeroes its questions, as the source's masks do (gates weigh nothing).

The backbone is pluggable: anything with ``yes_no_log_probs(images, questions) -> (N, 2)`` (the
full-vocabulary log-probabilities of "yes" and "no" as the next token). :class:`TransformersYesNo`
is that for any transformers VLM with an ``AutoProcessor`` (LLaVA, Qwen2-VL, Idefics, ...).

    vr = load_vision_reward("weights/my-vlm", device="cuda")   # + vision_reward.yaml, checklist.yaml
    vr.score_views(views_uint8, "a wooden chair")               # views (V, H, W, 3) -> (V,) scores

A VisionReward folder is a transformers VLM folder, optionally with ``vision_reward.yaml``
(:class:`VisionRewardConfig`; ``key=value`` overrides go on top) and ``checklist.yaml`` (else the
shipped VisionReward-Image checklist). Not the source's exact numbers: its public weights are a
SwissArmyTransformer checkpoint of CogVLM2-19B (not loadable by transformers: convert them, or wrap
the SAT model in a class with ``yes_no_log_probs``), and its alignment term comes from a second model
(VQAScore with clip-flant5-xxl): here the same backbone, or ``alignment_model``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from dreamcs.config import ConfigError, load_config

SHIPPED_CHECKLIST = Path(__file__).resolve().parents[1] / "assets" / "vision_reward" / "checklist.yaml"


@dataclass
class ChecklistItem:
    text: str = ""
    """The question, asked about the image alone (the source's checklist never names the prompt)."""
    weight: float = 0.0
    gate: str | None = None
    """Names this question a gate ("body"): its answer switches the questions ``gated_by`` it."""
    gated_by: str | None = None


@dataclass
class AlignmentItem:
    template: str = 'Does this figure show "{prompt}"? Please answer yes or no.'
    weight: float = 0.0


@dataclass
class Checklist:
    """VisionReward's questions and linear weights (``checklist.yaml``)."""

    name: str = "checklist"
    alignment: AlignmentItem = field(default_factory=AlignmentItem)
    intercept: float = 0.0
    questions: list[ChecklistItem] = field(default_factory=list)


def load_checklist(path: str | Path | None = None) -> Checklist:
    """A checklist YAML (None: the shipped VisionReward-Image one), checked: questions with text,
    gates without weight, every ``gated_by`` naming a gate, an alignment template with ``{prompt}``."""
    path = Path(path) if path is not None else SHIPPED_CHECKLIST
    c = load_config(Checklist, path)
    gates = {q.gate for q in c.questions if q.gate}
    problems = []
    if not c.questions:
        problems.append("no questions")
    for i, q in enumerate(c.questions):
        if not q.text.strip():
            problems.append(f"question {i} has no text")
        if q.gate and (q.weight or q.gated_by):
            problems.append(f"question {i} is gate {q.gate!r} and has a weight or a gate of its own")
        if q.gated_by and q.gated_by not in gates:
            problems.append(f"question {i} is gated by {q.gated_by!r}, which no question is")
    if "{prompt}" not in c.alignment.template:
        problems.append("alignment.template has no {prompt}")
    if problems:
        raise ConfigError(f"{path}: not a VisionReward checklist: " + "; ".join(problems))
    return c


def checklist_score(answers: Tensor, alignment: Tensor, weights: Tensor, gate_index: Tensor,
                    alignment_weight: float, intercept: float) -> Tensor:
    """The linear model: answers (V, Q) in [-1, 1], alignment (V,) in [0, 1], weights (Q,) (0 for
    gates), gate_index (Q,) long (the gate's column, -1 for ungated) -> scores (V,)."""
    gate = (answers[:, gate_index.clamp_min(0)] + 1) / 2  # hard answers: 1 for yes, 0 for no
    gate = torch.where(gate_index >= 0, gate, torch.ones_like(gate))
    return (answers * gate) @ weights + alignment_weight * alignment + intercept


@dataclass
class VisionRewardConfig:
    """How VisionReward asks its questions (``vision_reward.yaml`` in the model folder)."""

    checklist: str | None = None
    """A checklist YAML; None: the model folder's ``checklist.yaml``, else the shipped VisionReward-Image one."""
    prompt_template: str | None = None
    """The text around a question, e.g. ``"<image>Question: {question} Short answer:"`` (the source's
    CogVLM2 VQA format); None: the processor's chat template (image, then the question)."""
    yes_words: list[str] = field(default_factory=lambda: ["yes", "Yes", " yes", " Yes"])
    """Spellings of "yes"; those the tokenizer keeps as one token are pooled (log-sum-exp)."""
    no_words: list[str] = field(default_factory=lambda: ["no", "No", " no", " No"])
    answers: Literal["hard", "soft"] = "hard"
    """``hard``: +-1 as the source's greedy answers; ``soft``: P(yes) - P(no) over the two."""
    alignment_model: str | None = None
    """A second VLM folder / hub id for the alignment term (the source: a VQAScore model); None: the same."""
    batch_size: int = 16
    """(image, question) pairs per forward pass."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False


class YesNoVQA(Protocol):
    """The backbone interface: full-vocabulary log P(yes), log P(no) of the next token."""

    def yes_no_log_probs(self, images: Sequence[Any], questions: Sequence[str]) -> Tensor:
        """images (N PIL images), questions (N,) -> (N, 2) float32 log-probabilities."""
        ...


def _single_tokens(tokenizer: Any, words: Sequence[str]) -> list[int]:
    ids = []
    for w in words:
        enc = tokenizer.encode(w, add_special_tokens=False)
        if len(enc) == 1 and enc[0] != tokenizer.unk_token_id and enc[0] not in ids:
            ids.append(int(enc[0]))
    return ids


class TransformersYesNo(nn.Module):
    """A transformers VLM (``AutoModelForImageTextToText`` + ``AutoProcessor``) as a yes/no answerer."""

    def __init__(self, model: nn.Module, processor: Any, cfg: VisionRewardConfig, name: str = "model") -> None:
        super().__init__()
        self.model, self.processor, self.cfg = model.eval().requires_grad_(False), processor, cfg
        tok = processor.tokenizer
        tok.padding_side = "left"  # the answer position is then the last one in every row
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self.yes_ids, self.no_ids = _single_tokens(tok, cfg.yes_words), _single_tokens(tok, cfg.no_words)
        for what, ids, words in (("yes", self.yes_ids, cfg.yes_words), ("no", self.no_ids, cfg.no_words)):
            if not ids:
                raise ValueError(f"{name}: the tokenizer has no single token for {what!r} (tried {words}); "
                                 f"set {what}_words in vision_reward.yaml")
        if cfg.prompt_template is None and not getattr(processor, "chat_template", None):
            raise ValueError(f"{name}: the processor has no chat template; set prompt_template in "
                             "vision_reward.yaml (with the model's image token and {question})")
        params = inspect.signature(model.forward).parameters
        self._keep = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)

    @classmethod
    def from_pretrained(cls, path: str, cfg: VisionRewardConfig, device: str | torch.device = "cpu") -> TransformersYesNo:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        local = Path(path)
        if local.is_dir() and not (local / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no config.json: not a transformers model folder (the public "
                                    "VisionReward-Image weights are a SwissArmyTransformer checkpoint: convert "
                                    "them to a transformers VLM, or give one with a yes/no answering head)")
        kw: dict[str, Any] = {"trust_remote_code": cfg.trust_remote_code}
        if cfg.dtype != "auto":
            kw["torch_dtype"] = getattr(torch, cfg.dtype)
        try:
            processor = AutoProcessor.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
            model = AutoModelForImageTextToText.from_pretrained(path, **kw)
        except (OSError, ValueError) as e:
            raise FileNotFoundError(f"{path}: cannot load a vision-language model and processor for "
                                    f"VisionReward ({str(e).splitlines()[0]})") from None
        return cls(model.to(device), processor, cfg, name=path)

    def prompt(self, question: str) -> str:
        if self.cfg.prompt_template is not None:
            return self.cfg.prompt_template.format(question=question)
        msg = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self.processor.apply_chat_template(msg, add_generation_prompt=True, tokenize=False)

    @torch.no_grad()
    def yes_no_log_probs(self, images: Sequence[Any], questions: Sequence[str]) -> Tensor:
        """images (N PIL images), questions (N,) -> (N, 2): log P(yes), log P(no), float32 on the CPU."""
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images for {len(questions)} questions")
        p = next(self.model.parameters())
        out = []
        for s in range(0, len(questions), self.cfg.batch_size):
            batch = self.processor(images=list(images[s:s + self.cfg.batch_size]),
                                   text=[self.prompt(q) for q in questions[s:s + self.cfg.batch_size]],
                                   return_tensors="pt", padding=True)
            # pixel values in the model's dtype, ids as they are, everything on its device
            batch = {k: (v.to(p.device, p.dtype) if v.is_floating_point() else v.to(p.device)) if torch.is_tensor(v) else v
                     for k, v in batch.items()}
            if self._keep:
                batch[self._keep] = 1  # only the answer position's logits: (B, 1, vocab), not (B, L, vocab)
            logp = self.model(**batch).logits[:, -1].float().log_softmax(-1)
            out.append(torch.stack([logp[:, self.yes_ids].logsumexp(-1), logp[:, self.no_ids].logsumexp(-1)], -1).cpu())
        return torch.cat(out)


class VisionReward(nn.Module):
    """A checklist and a yes/no backbone (and optionally another for the alignment term)."""

    def __init__(self, backbone: nn.Module, checklist: Checklist, cfg: VisionRewardConfig | None = None,
                 alignment_backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg, self.checklist = cfg or VisionRewardConfig(), checklist
        self.backbone = backbone
        self.alignment_backbone = alignment_backbone if alignment_backbone is not None else backbone
        gates = {q.gate: i for i, q in enumerate(checklist.questions) if q.gate}
        self.register_buffer("weights", torch.tensor([q.weight for q in checklist.questions], dtype=torch.float32))
        self.register_buffer("gate_index", torch.tensor([gates[q.gated_by] if q.gated_by else -1
                                                         for q in checklist.questions], dtype=torch.long))

    def answers(self, logp: Tensor) -> Tensor:
        """(..., 2) log P(yes), log P(no) -> (...) answers in [-1, 1] (hard: +-1, ties count as no)."""
        margin = logp[..., 0] - logp[..., 1]
        if self.cfg.answers == "soft":
            return torch.tanh(margin / 2)
        return torch.where(margin > 0, 1.0, -1.0)

    @torch.no_grad()
    def score_views(self, views: np.ndarray, prompt: str) -> Tensor:
        """views (V, H, W, 3) uint8 and the prompt -> VR of each view (V,), float32 on the CPU."""
        from PIL import Image

        if views.ndim != 4 or views.shape[-1] != 3 or views.dtype != np.uint8:
            raise ValueError(f"views must be (V, H, W, 3) uint8, got {views.shape} {views.dtype}")
        images = [Image.fromarray(np.ascontiguousarray(v)) for v in views]
        qs = [q.text for q in self.checklist.questions]
        n, q = len(images), len(qs)
        logp = self.backbone.yes_no_log_probs([im for im in images for _ in qs], qs * n).view(n, q, 2)
        ask = self.checklist.alignment.template.format(prompt=prompt)
        align = self.alignment_backbone.yes_no_log_probs(images, [ask] * n)[:, 0].exp()  # VQAScore: P(yes)
        w, g = self.weights.cpu(), self.gate_index.cpu()
        return checklist_score(self.answers(logp), align, w, g, self.checklist.alignment.weight,
                               self.checklist.intercept)

    def score(self, views: np.ndarray, prompt: str) -> float:
        """The asset's VR: the mean over its views."""
        return float(self.score_views(views, prompt).mean())


def load_vision_reward(path: str, overrides: Sequence[str] = (), device: str | torch.device = "cpu") -> VisionReward:
    """A VisionReward from a VLM folder (or hub id), its ``vision_reward.yaml`` and ``checklist.yaml``
    if present, and ``key=value`` overrides of :class:`VisionRewardConfig`."""
    folder = Path(path)
    if not folder.exists() and (path.startswith((".", "/", "~")) or path.count("/") > 1):
        raise FileNotFoundError(f"{path}: no such VisionReward model folder")
    own = folder / "vision_reward.yaml"
    cfg = load_config(VisionRewardConfig, own if own.is_file() else None, list(overrides))
    if cfg.checklist is not None:
        checklist = load_checklist(cfg.checklist)
    else:
        checklist = load_checklist(folder / "checklist.yaml" if (folder / "checklist.yaml").is_file() else None)
    backbone = TransformersYesNo.from_pretrained(path, cfg, device)
    other = TransformersYesNo.from_pretrained(cfg.alignment_model, cfg, device) if cfg.alignment_model else None
    return VisionReward(backbone, checklist, cfg, other).eval()
