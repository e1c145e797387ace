"""Train the offline pixel prior: a diffusers ``UNet2DConditionModel`` (1 channel, 32 px) that
predicts the noise of a cosine-schedule DDPM, conditioned on MiniLM token embeddings of the
captions (with SDS's view suffixes), on renders of real and procedural objects (``dreamcs.prior.data``).

OUT, when done, is an ``embedded`` prior folder (``guidance.pretrained=OUT``):

    OUT/unet/ OUT/scheduler/ OUT/prior.yaml    save_prior with the EMA weights
    OUT/MODEL_CARD.md loss.png samples.png    the model card (dreamcs.prior.card)
    OUT/config.yaml metrics.jsonl             the resolved config; one line per logged step
    OUT/checkpoints/step_XXXXXXX.safetensors  model + EMA + AdamW state + RNG + step (no pickle)

``run(resume=True)`` continues from the newest checkpoint at the same step with the same random
draws, so a killed run ends with the weights an uninterrupted one would have.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamcs.prior.config import (  # noqa: F401 (re-exported: the config's old home)
    DEFAULT_CARD_PROMPTS,
    PRESET_DIR,
    PriorTrainConfig,
    default_cache_dir,
    preset_path,
)
from dreamcs.prior.data import ViewDataset, build_view_dataset, draw_captions
from dreamcs.utils import append_jsonl, atomic_write_bytes, atomic_write_text, read_jsonl

CKPT_FORMAT = "dreamcs-prior-checkpoint-1"
def encode_texts(spec: str, texts: list[str], max_tokens: int) -> tuple[Tensor, Tensor]:
    """Token embeddings as ``embedded`` guidance builds them: (U, max_tokens, D) and mask (U, max_tokens)."""
    from dreamcs.generate.guidance.pixel import pad_tokens
    from dreamcs.text import get_text_encoder

    emb = get_text_encoder(spec).encode(texts)
    pairs = [pad_tokens(emb.tokens[i][emb.mask[i]].float(), max_tokens) for i in range(len(texts))]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def build_unet(cfg: PriorTrainConfig, cross_dim: int) -> nn.Module:
    """The prior's UNet, seeded by ``cfg.seed`` (the same builder as the ``tiny`` guidance)."""
    from dreamcs.generate.guidance.pixel import tiny_unet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return tiny_unet(1, cfg.data.image_size, list(cfg.block_out_channels), cross_dim)


def load_init_weights(unet: nn.Module, source: str) -> Path:
    """Copy the UNet weights of prior folder ``source`` (``embedded``: the shipped one) into ``unet``;
    a folder without a UNet, or one of other widths, is a clear error naming it."""
    from safetensors.torch import load_file

    from dreamcs.generate.guidance.pixel import prior_dir

    folder = prior_dir(source)
    files = sorted((folder / "unet").glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"prior init_from={source}: no unet/*.safetensors in {folder}")
    state = {k: v for f in files for k, v in load_file(str(f)).items()}
    own = unet.state_dict()
    bad = sorted(set(own) ^ set(state)) + [k for k in own if k in state and own[k].shape != state[k].shape]
    if bad:
        raise ValueError(f"prior init_from={source}: its UNet does not match block_out_channels "
                         f"({len(bad)} tensors differ, e.g. {bad[0]})")
    unet.load_state_dict(state)
    return folder


def build_scheduler(cfg: PriorTrainConfig):  # -> diffusers.DDPMScheduler
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                         prediction_type="epsilon")


@dataclass
class PriorTrainResult:
    out: Path
    step: int
    """The step training stopped at."""
    stopped_early: bool
    """True when the time budget ran out before ``steps``."""
    final_loss: float | None


class PriorTrainer:
    """Trains into ``out``; ``run()`` returns a :class:`PriorTrainResult`."""

    def __init__(self, cfg: PriorTrainConfig, out: str | Path, show_progress: bool = True) -> None:
        cfg.validate()
        self.cfg, self.out, self.show_progress = cfg, Path(out), show_progress
        self.ckpt_dir = self.out / "checkpoints"
        self.device = torch.device(cfg.device)

    # -- state ----------------------------------------------------------------------------------
    def _setup(self) -> None:
        cfg = self.cfg
        cache = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
        self.data: ViewDataset = build_view_dataset(cfg.data, cache, progress=self.show_progress)
        self.images = torch.from_numpy(self.data.images).unsqueeze(1) * 2.0 - 1.0  # (N, 1, S, S) in [-1, 1]
        self._text_cache: dict[str, tuple[Tensor, Tensor]] = {}
        self.unet = build_unet(cfg, int(self.encode([""])[0].shape[-1]))
        if cfg.init_from:
            load_init_weights(self.unet, cfg.init_from)
        self.unet.to(self.device)
        self.ema = copy.deepcopy(self.unet).requires_grad_(False).eval()
        self.scheduler = build_scheduler(cfg)
        self.alphas_cumprod = self.scheduler.alphas_cumprod.float().to(self.device)
        self.params = [p for p in self.unet.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step, self.elapsed_s = 0, 0.0

    def encode(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """Token embeddings (B, max_tokens, D) and mask (B, max_tokens) of ``texts``, cached.

        Encoded one text at a time, when first drawn: a library of thousands of captions, each
        with its view suffixes, is too many to encode up front, and a text's embedding must not
        depend on the batch it came in (padding), or a resumed run would drift from an
        uninterrupted one."""
        for t in dict.fromkeys(texts):
            if t not in self._text_cache:
                tokens, mask = encode_texts(self.cfg.text_encoder, [t], self.cfg.max_tokens)
                self._text_cache[t] = (tokens[0], mask[0])
        pairs = [self._text_cache[t] for t in texts]
        return torch.stack([p[0] for p in pairs]).to(self.device), torch.stack([p[1] for p in pairs]).to(self.device)

    def lr_at(self, step: int) -> float:
        from dreamcs.schedule import C

        cfg = self.cfg
        scale = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        if cfg.cooldown_steps > 0:  # warmup-stable-decay: a linear ramp down over the last steps
            scale *= C([cfg.steps - cfg.cooldown_steps, 1.0, cfg.cooldown_floor, cfg.steps], step + 1)
        return cfg.lr * scale

    def ema_decay_at(self, step: int) -> float:
        return min(self.cfg.ema_decay, (1 + step) / (10 + step))

    def checkpoints(self) -> list[Path]:
        return sorted(self.ckpt_dir.glob("step_*.safetensors"))

    def save_checkpoint(self) -> Path:
        """Model, EMA, AdamW state, RNG and step in one safetensors file (atomic); prunes old ones."""
        from safetensors.torch import save

        opt_sd = self.opt.state_dict()
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.unet.state_dict().items()}
        tensors |= {f"ema.{k}": v.detach().cpu().contiguous() for k, v in self.ema.state_dict().items()}
        for i, st in opt_sd["state"].items():
            tensors |= {f"optim.{i}.{k}": torch.as_tensor(v).cpu().contiguous() for k, v in st.items()}
        tensors["rng"] = self.gen.get_state()
        meta = {"format": CKPT_FORMAT, "step": str(self.step), "elapsed_s": f"{self.elapsed_s:.3f}",
                "param_groups": json.dumps(opt_sd["param_groups"])}
        path = atomic_write_bytes(self.ckpt_dir / f"step_{self.step:07d}.safetensors", save(tensors, metadata=meta))
        for old in self.checkpoints()[: -self.cfg.keep_checkpoints]:
            old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, path: Path) -> None:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # a torn or foreign file: say which
            raise ValueError(f"{path}: not a readable checkpoint ({e})") from e
        if meta.get("format") != CKPT_FORMAT:
            raise ValueError(f"{path}: not a prior checkpoint (format {meta.get('format')!r})")

        def part(prefix: str) -> dict[str, Tensor]:
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

        try:
            self.unet.load_state_dict(part("model."))
            self.ema.load_state_dict(part("ema."))
        except RuntimeError as e:
            raise ValueError(f"{path}: weights do not fit the configured UNet ({str(e).splitlines()[0]})") from e
        state: dict[int, dict[str, Tensor]] = {}
        for k, v in part("optim.").items():
            i, name = k.split(".", 1)
            state.setdefault(int(i), {})[name] = v
        self.opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
        self.gen.set_state(tensors["rng"])
        self.step, self.elapsed_s = int(meta["step"]), float(meta.get("elapsed_s", 0.0))

    # -- training -------------------------------------------------------------------------------
    def train_step(self) -> float:
        """One optimiser step on a fresh batch; returns the loss."""
        cfg, g = self.cfg, self.gen
        b = cfg.batch_size
        # every draw on the CPU generator (the same data on any device), then moved
        idx = torch.randint(0, len(self.images), (b,), generator=g)
        x0 = self.images[idx]
        if cfg.hflip:
            flip = torch.rand(b, generator=g) < 0.5
            x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-1), x0)
        captions = draw_captions(self.data, idx, g, cfg.p_blank, cfg.p_category, cfg.p_view)
        tokens, token_mask = self.encode(captions)
        t = torch.randint(0, cfg.num_train_timesteps, (b,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        x0, t, noise = x0.to(self.device), t.to(self.device), noise.to(self.device)
        ab = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        pred = self.unet(noisy, t, encoder_hidden_states=tokens, encoder_attention_mask=token_mask).sample
        loss = F.mse_loss(pred, noise)
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.opt.step()
        with torch.no_grad():
            d = self.ema_decay_at(self.step)
            for pe, p in zip(self.ema.parameters(), self.unet.parameters(), strict=True):
                pe.lerp_(p.detach(), 1.0 - d)
        self.step += 1
        return float(loss.detach())

    def _resume(self) -> None:
        ckpts = self.checkpoints()
        if not ckpts:
            raise FileNotFoundError(f"{self.ckpt_dir}: no checkpoint to resume from")
        self.load_checkpoint(ckpts[-1])
        # metrics logged after the checkpoint will be logged again: drop them
        metrics = self.out / "metrics.jsonl"
        kept = [r for r in read_jsonl(metrics) if int(r.get("step", 0)) <= self.step]
        atomic_write_text(metrics, "".join(json.dumps(r) + "\n" for r in kept))

    def run(self, resume: bool = False) -> PriorTrainResult:
        from dreamcs.config import save_config

        cfg = self.cfg
        if not resume and self.checkpoints():
            raise FileExistsError(f"{self.out}: already holds a training run; pass --resume or pick another --out")
        if resume and not self.checkpoints():
            raise FileNotFoundError(f"{self.ckpt_dir}: no checkpoint to resume from")
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.out / "config.yaml")
        self._setup()
        if resume:
            self._resume()
        start_time, window = time.perf_counter(), []
        deadline = None if cfg.minutes is None else start_time + 60.0 * cfg.minutes
        last_loss, stopped_early, t_log = None, False, time.perf_counter()
        self.unet.train()
        with self._progress() as bar:
            task = bar.add_task("training prior", total=cfg.steps, completed=self.step) if bar else None
            while self.step < cfg.steps:
                if deadline is not None and time.perf_counter() >= deadline:
                    stopped_early = True
                    break
                window.append(self.train_step())
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    now = time.perf_counter()
                    last_loss = float(np.mean(window))
                    append_jsonl(self.out / "metrics.jsonl", {
                        "step": self.step, "loss": last_loss, "lr": self.lr_at(self.step - 1),
                        "ema_decay": self.ema_decay_at(self.step - 1),
                        "s_per_step": (now - t_log) / len(window),
                        "elapsed_s": self.elapsed_s + now - start_time})
                    window, t_log = [], now
                if self.step % cfg.save_every == 0:
                    self._checkpoint(start_time)
                if bar:
                    bar.update(task, completed=self.step, description=f"training prior (loss {last_loss or 0:.4f})")
        self._checkpoint(start_time)
        self.finish()
        return PriorTrainResult(self.out, self.step, stopped_early, last_loss)

    def _checkpoint(self, start_time: float) -> None:
        elapsed = self.elapsed_s
        self.elapsed_s = elapsed + time.perf_counter() - start_time
        self.save_checkpoint()
        self.elapsed_s = elapsed  # the counter of this invocation restarts from start_time

    def _progress(self):  # -> rich Progress or a null context
        import contextlib

        if not self.show_progress:
            return contextlib.nullcontext(None)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())

    def finish(self) -> None:
        """Write the prior folder (EMA weights) and the model card into ``out``."""
        from dreamcs.generate.guidance.pixel import save_prior
        from dreamcs.prior.card import write_model_card

        stage = self.out / ".prior-staging"
        shutil.rmtree(stage, ignore_errors=True)
        save_prior(stage, copy.deepcopy(self.ema).cpu(), self.scheduler, text_encoder=self.cfg.text_encoder,
                   max_tokens=self.cfg.max_tokens, image_size=self.cfg.data.image_size, channels=1)
        for name in ("unet", "scheduler", "prior.yaml"):  # swap in whole, so a reader never sees a mix
            dst = self.out / name
            if dst.is_dir():
                shutil.rmtree(dst)
            os.replace(stage / name, dst)
        shutil.rmtree(stage, ignore_errors=True)
        if self.cfg.card:
            write_model_card(self.out, self.cfg, self.data, step=self.step,
                             n_params=sum(p.numel() for p in self.unet.parameters()))


def count_params(cfg: PriorTrainConfig, cross_dim: int = 384) -> int:
    """Parameters of the UNet that ``cfg`` builds (for the card and the CLI)."""
    return sum(p.numel() for p in build_unet(cfg, cross_dim).parameters())


def seconds_per_step(cfg: PriorTrainConfig, steps: int = 5, cross_dim: int = 384, device: str = "cpu") -> tuple[float, float]:
    """Median (wall, CPU) seconds of a training step at ``cfg``'s model and batch on random data.

    CPU time is what the step would take on free cores when the machine is shared (it counts every
    thread, so with T threads the wall time on a free machine is about CPU / T at best)."""
    dev = torch.device(device)
    unet = build_unet(cfg, cross_dim).to(dev)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr)
    s, b = cfg.data.image_size, cfg.batch_size
    wall, cpu = [], []
    for _ in range(steps + 1):
        x, emb = torch.randn(b, 1, s, s, device=dev), torch.randn(b, cfg.max_tokens, cross_dim, device=dev)
        t0, c0 = time.perf_counter(), time.process_time()
        loss = F.mse_loss(unet(x, torch.randint(0, 1000, (b,), device=dev), encoder_hidden_states=emb).sample, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        float(loss.detach())  # waits for the device
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    # the first step pays for allocation
    return float(np.median(wall[1:])), float(np.median(cpu[1:]))
