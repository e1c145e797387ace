"""Test helpers for the reward stage: tiny configs, a mesh-core availability check."""

from __future__ import annotations

import pytest
import torch

from dreamcs.reward import RewardCS, preset


def tiny_model(seed: int = 0, **overrides) -> RewardCS:
    torch.manual_seed(seed)
    kw = dict(text_encoder="hash:16", faces_per_patch=8)
    kw.update(overrides)
    return RewardCS(preset("tiny", **kw))


def random_batch(b: int = 3, p: int = 12, k: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, p, k, 10, generator=g), torch.rand(b, p, 3, generator=g) * 2 - 1


def mesh_core():
    """The mesh core module, or skip while fusion/features have not landed."""
    import dreamcs.mesh as mesh

    needed = ("patch_features", "patch_centers", "fuse", "PatchedMesh")
    if not all(hasattr(mesh, n) for n in needed):
        pytest.skip("mesh core (fuse, patch_features) not available yet")
    return mesh


class SyntheticPrefDataset(torch.utils.data.Dataset):
    """Items in MeshPrefDataset's dict format; preferred and dispreferred features differ in mean.

    Prompts repeat across classes (so same-prompt pairs exist for Bradley-Terry).
    """

    PROMPTS = ["a chair", "a table", "a lamp", "a vase"]

    def __init__(self, n_pos: int = 10, n_neg: int = 12, p: int = 12, k: int = 8, seed: int = 0, shift: float = 0.6):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n_pos + n_neg):
            label = 1 if i < n_pos else 0
            f = torch.randn(p, k, 10, generator=g) + (shift if label else -shift)
            c = torch.rand(p, 3, generator=g) * 2 - 1
            score = (4.5 if label else 1.5) + 0.3 * float(torch.randn((), generator=g))
            self.items.append(dict(features=f, centers=c, score=score, label=label,
                                   prompt=self.PROMPTS[i % len(self.PROMPTS)], id=f"s{i}",
                                   object_id=f"o{i}", source="synthetic"))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def tiny_train_config(**kw):
    from dreamcs.reward.train import TrainConfig

    model = preset("tiny", **{"text_encoder": "hash:16", "faces_per_patch": 8, **kw.pop("model", {})})
    base = dict(steps=6, batch_size=6, warmup_steps=2, log_every=1, checkpoint_every=3, progress=False, lr=1e-3)
    base.update(kw)
    return TrainConfig(model=model, **base)


def _defects(mesh, rng):
    """Synthetic defects of the kind early SDS runs show: noise, dropped faces, flattening."""
    import numpy as np
    import trimesh

    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    scale = float(np.ptp(v, axis=0).max())
    noisy = trimesh.Trimesh(v + rng.normal(scale=0.04 * scale, size=v.shape), f, process=False)
    keep = rng.random(len(f)) > 0.4
    dropped = trimesh.Trimesh(v, f[keep] if keep.sum() >= 4 else f[:4], process=False)
    flat = trimesh.Trimesh(v * np.array([1.0, 0.08, 1.0]), f, process=False)
    return {"noise": noisy, "dropped_faces": dropped, "flattened": flat}


def sample_pref_items(sample_dir, n_patches: int = 32, faces_per_patch: int = 16, seed: int = 0) -> list[dict]:
    """A small labelled set from the packaged sample meshes: each clean mesh is preferred (score
    about 4.5), each of its three defective copies dispreferred (about 1.5). Items follow the
    MeshPrefDataset dict contract."""
    import numpy as np

    from dreamcs.mesh import fuse, load_mesh, normalize, patch_centers, patch_features

    rng = np.random.default_rng(seed)
    items = []
    for path in sorted(sample_dir.glob("*.obj")):
        clean = normalize(load_mesh(path))
        prompt = "a " + path.stem.split("__")[-1].replace("s_", "", 1).replace("_", " ")
        variants = {"clean": clean, **_defects(clean, rng)}
        for name, m in variants.items():
            pm = fuse(normalize(m) if name != "clean" else m, n_patches=n_patches, faces_per_patch=faces_per_patch)
            v = torch.as_tensor(pm.vertices, dtype=torch.float32)
            f = torch.as_tensor(pm.faces, dtype=torch.long)
            label = 1 if name == "clean" else 0
            items.append(dict(features=patch_features(v, f), centers=patch_centers(v, f),
                              score=float((4.5 if label else 1.5) + rng.normal(scale=0.2)), label=label,
                              prompt=prompt, id=f"{path.stem}:{name}", object_id=path.stem, source=name))
    return items


class ItemsDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[dict]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One process of the 2-process gloo test: train, then write this rank's weights."""
    import os

    from safetensors.torch import save_file

    from dreamcs.reward.train import train

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cfg = tiny_train_config(model={"dropout": 0.1}, steps=4, batch_size=8, checkpoint_every=2)
        model = train(cfg, SyntheticPrefDataset(), f"{out_dir}/run")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out_dir}/rank{rank}.safetensors")
        torch.distributed.barrier()  # as in cs_gather_worker: no rank tears gloo down under the other
    finally:
        torch.distributed.destroy_process_group()


def cs_gather_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One process of the CS-gather test: this rank's uneven share of a fixed batch through
    ``compute_loss``; writes d_cs and the gradient of its embeddings."""
    from safetensors.torch import save_file

    from dreamcs.reward.train import TrainConfig, compute_loss

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        emb, label, score = cs_gather_batch()
        idx = torch.tensor([0, 1, 2, 5, 6]) if rank == 0 else torch.tensor([3, 4, 7, 8])  # 5 + 4 items
        e = emb[idx].clone().requires_grad_(True)
        batch = {"label": label[idx], "score": score[idx]}
        loss, logs = compute_loss(score[idx], e, batch, TrainConfig(lambda_cs=1.0))
        loss.backward()
        save_file({"grad": e.grad, "d_cs": torch.tensor([logs["d_cs"]])}, f"{out_dir}/cs{rank}.safetensors")
        # both ranks past every collective (the backward's included) before either tears down gloo:
        # without it one rank's teardown could abort the other ("terminate called without an active exception")
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def cs_gather_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed batch: embeddings (9, 8), labels (9,) with 4 preferred, scores (9,)."""
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(9, 8, generator=g), dim=1)
    label = torch.tensor([1, 0, 1, 0, 1, 0, 0, 1, 0])
    return emb, label, label.float() * 3 + 1


def write_tiny_dataset(root, n_objects: int = 6, n_patches: int = 8, faces_per_patch: int = 8):
    """A built-dataset folder (items.parquet + shards/*.npz, the store's format) from primitive
    meshes: per object a clean copy (preferred), a squashed one (dispreferred) and a noisy one in
    the unlabelled middle band; objects alternate train / val splits. Returns root."""
    from pathlib import Path

    import numpy as np
    import trimesh

    from dreamcs.data.store import write_table
    from dreamcs.mesh import fuse, normalize

    root = Path(root)
    (root / "shards").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays, rows = {}, []
    shapes = [trimesh.creation.icosphere(subdivisions=2), trimesh.creation.box(), trimesh.creation.cylinder(0.5, 1.0)]
    for o in range(n_objects):
        base = shapes[o % len(shapes)]
        variants = {"clean": (base, 4.5, 1), "squashed": (base, 1.5, 0), "noisy": (base, 3.8, -1)}
        for name, (m, score, label) in variants.items():
            v = np.asarray(m.vertices) * (np.array([1.0, 0.1, 1.0]) if name == "squashed" else 1.0)
            if name == "noisy":
                v = v + rng.normal(scale=0.02, size=v.shape)
            pm = fuse(normalize(trimesh.Trimesh(v, m.faces, process=False)), n_patches=n_patches,
                      faces_per_patch=faces_per_patch)
            j = len(rows)
            arrays[f"v{j}"], arrays[f"f{j}"] = np.asarray(pm.vertices, np.float32), np.asarray(pm.faces, np.int64)
            rows.append(dict(id=f"o{o}:{name}", prompt=f"a shape number {o % 3}", source="tiny", object_id=f"o{o}",
                             alignment=score, realism=score, fidelity=score, overall=score, label=label,
                             provenance="test", split="train" if o % 3 else "val", mesh_hash=f"h{j}",
                             n_faces=int(pm.faces.shape[0] * pm.faces.shape[1]), caption="", defect=name,
                             details="", shard="shard_000.npz", shard_index=j))
    np.savez(root / "shards" / "shard_000.npz", **arrays)
    write_table(rows, root / "items.parquet")
    return root
