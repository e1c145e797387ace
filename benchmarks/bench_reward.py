"""RewardCS speed: the CS loss, reward forward+backward on one 16,384-face mesh (small and base),
and training throughput in meshes per second. Medians over repeats, CPU unless CUDA is present."""

from __future__ import annotations

import tempfile
import time

import torch
from common import median_ms, print_table

from dreamcs.reward import RewardCS, cs_divergence, preset


def _faces_16k() -> tuple[torch.Tensor, torch.Tensor]:
    """An icosphere's first 16,384 faces as a (256, 64, 3) patch layout (index layout only)."""
    import trimesh

    ico = trimesh.creation.icosphere(subdivisions=5)  # 20,480 faces
    v = torch.as_tensor(ico.vertices, dtype=torch.float32)
    f = torch.as_tensor(ico.faces[:16384], dtype=torch.long).reshape(256, 64, 3)
    return v, f


def bench_cs(rows: list) -> None:
    g = torch.Generator().manual_seed(0)
    for b, d in ((256, 256), (1024, 256)):
        emb = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=-1).requires_grad_(True)

        def step(emb: torch.Tensor = emb, b: int = b) -> None:
            loss = -cs_divergence(emb[: b // 2], emb[b // 2 :])
            loss.backward()
            emb.grad = None

        ms = median_ms(step, repeats=20, warmup=3)
        note = "target < 5 ms" if b == 256 else ""
        rows.append([f"CS loss fwd+bwd B={b} (m=n={b // 2}), D={d}", ms, note])


def bench_reward(rows: list) -> None:
    try:
        from dreamcs.mesh import patch_features  # noqa: F401

        v, f = _faces_16k()
    except ImportError:
        v = f = None
    for name in ("small", "base"):
        torch.manual_seed(0)
        model = RewardCS(preset(name))
        model.text_encoder.encode(["a wooden chair"])  # warm the prompt cache
        if v is not None:
            verts = v.clone().requires_grad_(True)

            def step(model: RewardCS = model, verts: torch.Tensor = verts) -> None:
                model.reward_from_vertices(verts, f, "a wooden chair").backward()
                verts.grad = None
                model.zero_grad(set_to_none=True)

            label = "from vertices (face features included)"
        else:
            feats, centers = torch.randn(1, 256, 64, 10), torch.rand(1, 256, 3)

            def step(model: RewardCS = model, feats: torch.Tensor = feats, centers: torch.Tensor = centers) -> None:
                model(feats, centers, ["a wooden chair"]).reward.sum().backward()
                model.zero_grad(set_to_none=True)

            label = "from features (mesh core not importable)"
        ms = median_ms(step, repeats=5, warmup=1)
        n = sum(p.numel() for p in model.parameters()) / 1e6
        rows.append([f"reward fwd+bwd, 16,384 faces, {name} ({n:.1f} M params), {label}", ms, ""])


def bench_exact_floaters(rows: list) -> None:
    """The floater figure read off the mesh (``dreamcs.mesh.parts.detached_area_share``, fwd+bwd), which
    the shipped reward adds to each scored generation step, as a share of the reward call itself
    (the shipped RewardCS from vertices on the same 16,384-face layout, fwd+bwd), in one process."""
    import trimesh

    from dreamcs.mesh.parts import detached_area_share

    v, f = _faces_16k()
    model = RewardCS.from_pretrained("embedded")
    for p in model.parameters():
        p.requires_grad_(False)
    verts = v.clone().requires_grad_(True)

    def reward_call() -> None:
        model.reward_from_vertices(verts, f, "a wooden chair").backward()
        verts.grad = None

    base = median_ms(reward_call, repeats=5, warmup=1)
    rows.append(["shipped reward fwd+bwd from vertices, 16,384 faces (baseline)", base, "1.00x"])
    for sub in (5, 6):
        body = trimesh.creation.icosphere(subdivisions=sub)
        bit = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
        bit.apply_translation([1.5, 0.0, 0.0])
        for name, mesh in (("one piece", body), ("with a floater", trimesh.util.concatenate([body, bit]))):
            x = torch.as_tensor(mesh.vertices, dtype=torch.float32).requires_grad_(True)
            faces = torch.as_tensor(mesh.faces)

            def share(x: torch.Tensor = x, faces: torch.Tensor = faces) -> None:
                detached_area_share(x, faces).backward()
                x.grad = None

            ms = median_ms(share, repeats=5, warmup=1)
            rows.append([f"exact floater figure fwd+bwd, {len(mesh.faces):,} faces, {name}", ms, f"{ms / base:.2f}x"])


def bench_train(rows: list) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reward"))
    from reward_helpers import SyntheticPrefDataset

    from dreamcs.reward.train import TrainConfig, train

    data = SyntheticPrefDataset(n_pos=32, n_neg=32, p=256, k=64)
    for name, bs, steps in (("small", 16, 6),):
        cfg = TrainConfig(model=preset(name), steps=steps, batch_size=bs, warmup_steps=1, log_every=1,
                          checkpoint_every=1000, progress=False)
        for it in data.items:  # the preset reads the boundary channels: closed synthetic meshes, all 0
            it["boundary"] = torch.zeros(256, 64, cfg.model.extra_channels)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train(cfg, data, tmp)
            dt = time.perf_counter() - t0
            from dreamcs.utils import read_jsonl

            recs = read_jsonl(Path(tmp) / "metrics.jsonl")
        # steady state: meshes/s between the first and last logged step
        rate = (recs[-1]["step"] - recs[0]["step"]) * bs / max(1e-9, dt - recs[0]["step"] * bs / recs[0]["meshes_per_s"])
        rows.append([f"training throughput, {name}, batch {bs}, CS loss", rate, f"meshes/s ({dt:.1f} s for {steps} steps)"])


def main() -> None:
    rows: list = []
    bench_cs(rows)
    bench_reward(rows)
    bench_exact_floaters(rows)
    bench_train(rows)
    print_table("RewardCS (ms unless noted)", ["what", "median", "note"], rows)


if __name__ == "__main__":
    main()
