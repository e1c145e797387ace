"""``MeshPrefDataset``: a built 3D-MeshPref folder as a torch Dataset (what the reward trainer reads).

    ds = MeshPrefDataset("meshpref", split="train")
    item = ds[0]
    item["features"]  # (P, K, 10) float32, MeshMAE channel order (dreamcs.mesh.patch_features)
    item["boundary"]  # (P, K, E) float32: the extra channels of dreamcs.mesh.channels (E = extra_channels, 2)
    item["centers"]   # (P, 3) float32
    item["score"], item["label"], item["prompt"], item["id"], item["object_id"], item["source"]
    item["teacher_figures"]  # (12,) float32, only when the folder has teacher_figures.parquet
                             # (dreamcs.data.teacher_figures; NaN for an item it could not score)
    item["mesh_figures"]     # (3,) float32, the ramps of MESH_ONLY_FIGURES, when the parquet has them

Only labelled rows are served (label 1 preferred, 0 dispreferred); the middle band is not. Features
are computed from the stored patched mesh on access; shards are opened lazily and the last one kept
open, so a sequential pass reads each shard once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dreamcs.data.store import read_table


class MeshPrefDataset(Dataset):
    """Items of one split of a MeshPref dataset folder; see the module docstring."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: Literal["train", "val", "test", "all"] = "train",
        sources: list[str] | None = None,
    ) -> None:
        self.root = Path(root)
        #: extra channels each item carries (``dreamcs.mesh.channels``); ``ask_extra_channels`` raises it
        self.extra_channels = 2
        if split not in ("train", "val", "test", "all"):
            raise ValueError(f"split must be train, val, test or all, got {split!r}")
        rows = read_table(self.root)
        self.rows = [
            r for r in rows
            if r["label"] in (0, 1) and (split == "all" or r["split"] == split) and (sources is None or r["source"] in sources)
        ]
        self.split = split
        self._open: tuple[str, Any] | None = None
        from dreamcs.data.teacher_figures import read_teacher_figures

        #: the geometric teacher's penalty ramps per item id, when the folder has them
        self.teacher_figures = read_teacher_figures(self.root)
        self._n_figures = len(next(iter(self.teacher_figures.values()), ())) if self.teacher_figures else 0
        #: the ramps of the figures no head predicts (``MESH_ONLY_FIGURES``), when the parquet has them
        #: (one written before scorer v5 does not): a reward reads them as its exact figures
        self.mesh_figures = self._read_mesh_figures() if self.teacher_figures else None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 labels, e.g. for a balanced sampler."""
        return np.array([r["label"] for r in self.rows], dtype=np.int64)

    def _arrays(self, row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        # keyed by process too: a forked DataLoader worker must not share the parent's file offset
        key = (row["shard"], os.getpid())
        if self._open is None or self._open[0] != key:
            if self._open is not None and self._open[0][1] == os.getpid():
                self._open[1].close()
            self._open = (key, np.load(self.root / "shards" / row["shard"]))
        z, j = self._open[1], row["shard_index"]
        return z[f"v{j}"], z[f"f{j}"]

    def __getitem__(self, i: int) -> dict[str, Any]:
        from dreamcs.mesh import patch_centers, patch_features
        from dreamcs.mesh.channels import patch_extra_channels

        r = self.rows[i]
        v, f = self._arrays(r)
        verts = torch.from_numpy(np.asarray(v, dtype=np.float32))
        faces = torch.from_numpy(np.asarray(f, dtype=np.int64))
        return {
            "features": patch_features(verts, faces).float(),
            "centers": patch_centers(verts, faces).float(),
            "boundary": patch_extra_channels(verts, faces, self.extra_channels),  # a model reads the first it needs
            "score": float(r["overall"]),
            "label": int(r["label"]),
            "prompt": r["prompt"],
            "id": r["id"],
            "object_id": r["object_id"],
            "source": r["source"],
            # what the mesh shows; a wrong-prompt item's prompt is another object's caption
            "caption": str(r.get("caption") or ""),
            "alignment": float("nan") if r.get("alignment") is None else float(r["alignment"]),
            **self._teacher_target(r["id"]),
        }

    def _read_mesh_figures(self) -> dict[str, Any] | None:
        from dreamcs.data.teacher_figures import MESH_ONLY_FIGURES, read_teacher_figures

        try:
            return read_teacher_figures(self.root, MESH_ONLY_FIGURES)
        except ValueError:  # written before v5: no such columns
            return None

    def _teacher_target(self, item_id: str) -> dict[str, Tensor]:
        if self.teacher_figures is None:
            return {}
        t = self.teacher_figures.get(str(item_id))
        out = {"teacher_figures": torch.tensor(t) if t is not None else torch.full((self._n_figures,), float("nan"))}
        if self.mesh_figures is not None:
            from dreamcs.data.teacher_figures import MESH_ONLY_FIGURES

            m = self.mesh_figures.get(str(item_id))
            out["mesh_figures"] = torch.tensor(m) if m is not None else torch.full((len(MESH_ONLY_FIGURES),), float("nan"))
        return out

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen shards themselves
        d = dict(self.__dict__)
        d["_open"] = None
        return d

    def __repr__(self) -> str:
        n1 = int(self.labels.sum()) if len(self) else 0
        return f"MeshPrefDataset({str(self.root)!r}, split={self.split!r}: {len(self)} items, {n1} preferred)"


class ConcatMeshPref(Dataset):
    """Several MeshPref datasets as one, e.g. the offline build beside an SDS harvest's build (the
    paper trains on captioned meshes and meshes of early SDS runs together). Items are read from
    their own folders; ``rows`` (what the trainer reads labels, prompts and the ``source`` it balances
    over from, without featurising) are the parts' rows in order, when every part has them."""

    def __init__(self, parts: list[Dataset]) -> None:
        if not parts:
            raise ValueError("ConcatMeshPref needs at least one dataset")
        self.parts = list(parts)
        self._where = [(k, j) for k, p in enumerate(self.parts) for j in range(len(p))]  # type: ignore[arg-type]
        if all(isinstance(getattr(p, "rows", None), list) for p in self.parts):
            self.rows = [r for p in self.parts for r in p.rows]  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self._where)

    @property
    def labels(self) -> np.ndarray:
        rows = getattr(self, "rows", None)
        labels = [r["label"] for r in rows] if rows is not None else [self[i]["label"] for i in range(len(self))]
        return np.array(labels, dtype=np.int64)

    def __getitem__(self, i: int) -> dict[str, Any]:
        k, j = self._where[i]
        return self.parts[k][j]

    def __repr__(self) -> str:
        return f"ConcatMeshPref({', '.join(repr(p) for p in self.parts)})"


def ask_extra_channels(dataset: Any, n: int) -> None:
    """Make ``dataset`` (a MeshPrefDataset, a ConcatMeshPref of them, or any dataset with an
    ``extra_channels`` attribute) give at least ``n`` extra channels per item; others are left alone.
    The third channel (isolation) costs ~20 ms an item, so datasets give two unless a model asks."""
    for part in getattr(dataset, "parts", [dataset]):
        if hasattr(part, "extra_channels"):
            part.extra_channels = max(int(part.extra_channels), int(n))
