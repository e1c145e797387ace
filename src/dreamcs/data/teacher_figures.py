"""The geometric teacher's reading of every item of a built dataset, as training targets.

    write_teacher_figures("OFFLINE", workers=2)    # -> OFFLINE/teacher_figures.parquet
    read_teacher_figures("OFFLINE")                # {item id: (12,) float32 in [0, 1]}

For each item's stored mesh, the ``geometric`` scorer's penalty ramps (``TEACHER_FIGURES``, each 0 = the
figure shows nothing, 1 = its full penalty; the ramps of ``GeometricScorerConfig``): what the teacher
sees on the mesh, figure by figure, rather than one overall number. A reward trained to predict them
beside its own objective (``TrainConfig.lambda_teacher``) learns shape features that the teacher reads
right on real objects it has never seen (ragged tears, small handles, sag, crease concentration, ...).

A long job: rows are appended to ``teacher_figures.partial.jsonl`` as chunks finish, a rerun skips the
ids already there (unless their row holds another scorer version's figures: those are scored again),
and the parquet is written atomically at the end.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dreamcs.data.scorers.geometric import GeometricScorerConfig

FILENAME = "teacher_figures.parquet"


def teacher_figure_names(cfg: GeometricScorerConfig | None = None) -> list[str]:
    """The weighed figures of the scorer config, realism then fidelity, in a fixed order."""
    cfg = cfg or GeometricScorerConfig()
    return [k for ramps in (cfg.realism, cfg.fidelity) for k, (_, _, w) in ramps.items() if w > 0]


#: The figures a reward's figure head predicts, in its output order: the weighed figures of the v3
#: scorer, which every trained head so far learnt. Pinned (not derived from the scorer's current
#: weights) so that a scorer that stops weighing a figure (v4: ``sag``) leaves trained heads loadable;
#: the reward weighs each by the current scorer (``dreamcs.reward.model``), 0 where it is not weighed.
TEACHER_FIGURES: list[str] = [
    "parts_far_small", "ragged_boundary", "ragged_holes", "small_handles", "nonmanifold", "winding",
    "jagged", "folds", "flatness", "thin", "concentration", "sag",
]

#: Figures the scorer weighs beyond ``TEACHER_FIGURES`` (v5's three: two new figures and v3's
#: ``soft_share``, weighed since v5): no trained head predicts them; a reward reads them off the mesh
#: where the caller has it (``RewardCSConfig.exact_figures``), and ``write_teacher_figures`` stores
#: their ramps beside the twelve (``penalty_ramps``).
MESH_ONLY_FIGURES: list[str] = ["self_crossing", "normal_anisotropy", "soft_share"]


def scorer_weights(names: list[str], cfg: GeometricScorerConfig | None = None) -> tuple[list[float], list[int]]:
    """The scorer's penalty weight of each figure in ``names`` (0 for one it does not weigh) and its
    group (0 realism, 1 fidelity): how a reward's teacher score weighs the figures it reads."""
    cfg = cfg or GeometricScorerConfig()
    ramps = {**cfg.realism, **cfg.fidelity}
    return [float(ramps[k][2]) if k in ramps else 0.0 for k in names], [int(k not in cfg.realism) for k in names]


def penalty_ramps(figures: dict[str, float], cfg: GeometricScorerConfig | None = None) -> dict[str, float]:
    """The scorer's figures of one mesh -> the ramp in [0, 1] (not yet weighed) of each figure of
    ``TEACHER_FIGURES`` and each other figure the config weighs."""
    from dreamcs.data.scorers.geometric import ramp

    cfg = cfg or GeometricScorerConfig()
    ramps = {**cfg.realism, **cfg.fidelity}
    return {k: ramp(float(figures[k]), *ramps[k][:2]) for k in _ramp_names(cfg)}


def _ramp_names(cfg: GeometricScorerConfig) -> list[str]:
    """The columns ``penalty_ramps`` writes: ``TEACHER_FIGURES``, then the config's other weighed figures."""
    return TEACHER_FIGURES + [k for k in teacher_figure_names(cfg) if k not in TEACHER_FIGURES]


def _score_chunk(root: str, rows: list[tuple[str, str]]) -> list[dict[str, Any]]:
    import torch

    from dreamcs.data.scorers.geometric import GeometricScorer
    from dreamcs.mesh.io import load_mesh

    torch.set_num_threads(1)
    scorer = GeometricScorer()
    out = []
    for item_id, mesh_path in rows:
        try:
            rec: dict[str, Any] = {"id": item_id, **penalty_ramps(scorer.figures(load_mesh(Path(root) / mesh_path)))}
        except Exception as e:  # noqa: BLE001 - one bad mesh must not stop the job; it is named and skipped
            rec = {"id": item_id, "error": f"{mesh_path}: {type(e).__name__}: {e}"}
        out.append(rec)
    return out


def write_teacher_figures(root: str | os.PathLike, workers: int = 1, chunk: int = 64) -> Path:
    """Score every item of the dataset at ``root`` (its stored meshes) -> ``root/teacher_figures.parquet``.

    Resumes from ``teacher_figures.partial.jsonl``. An item whose mesh cannot be read or scored gets
    no target (the trainer leaves it out of this term) and is listed, with its file and the reason,
    in ``teacher_figures.failures.jsonl``; a rerun tries it again."""
    import pandas as pd

    from dreamcs.data.store import read_table
    from dreamcs.utils import append_jsonl, read_jsonl

    root = Path(root)
    partial, failures = root / "teacher_figures.partial.jsonl", root / "teacher_figures.failures.jsonl"
    rows = [(str(r["id"]), str(r["mesh_path"])) for r in read_table(root) if r.get("mesh_path")]
    if not rows:
        raise ValueError(f"{root}: no items with a stored mesh (mesh_path) to score")
    _drop_torn_line(partial)  # else the next row would be appended to a killed run's half line
    # a row written by another scorer version (other weighed figures) is scored again, not resumed
    names = set(_ramp_names(GeometricScorerConfig()))
    done = {r["id"] for r in read_jsonl(partial) if set(r) - {"id"} == names} if partial.is_file() else set()
    todo = [r for r in rows if r[0] not in done]
    chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]

    def record(recs: list[dict[str, Any]]) -> None:
        for rec in recs:
            append_jsonl(failures if "error" in rec else partial, rec)

    if workers <= 1:
        for c in chunks:
            record(_score_chunk(str(root), c))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for recs in pool.map(_score_chunk, [str(root)] * len(chunks), chunks):
                record(recs)
    table = pd.DataFrame([r for r in read_jsonl(partial) if set(r) - {"id"} == names]).drop_duplicates("id", keep="last")
    out = root / FILENAME
    tmp = out.with_name(out.name + ".tmp")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    return out


def _drop_torn_line(path: Path) -> None:
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def read_teacher_figures(root: str | os.PathLike, names: list[str] | None = None) -> dict[str, np.ndarray] | None:
    """{item id: (len(names),) float32} from ``root/teacher_figures.parquet``; None when it is absent.

    A file written with other figures than ``names`` (default ``TEACHER_FIGURES``) is an error that
    names the missing ones: a model's figure head is tied to the order it was trained with."""
    import pandas as pd

    path = Path(root) / FILENAME
    if not path.is_file():
        return None
    names = names or TEACHER_FIGURES
    table = pd.read_parquet(path)
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise ValueError(f"{path}: no column for teacher figure(s) {missing}; rerun `dreamcs data teacher-figures`")
    values = table[names].to_numpy(np.float32)
    return {str(i): v for i, v in zip(table["id"], values, strict=True)}


def check_teacher_targets(dataset: Any, n: int) -> None:
    """Raise unless every part of ``dataset`` (a MeshPrefDataset or a ConcatMeshPref of them) has
    teacher figures of length ``n``, naming the folder that lacks them and the command that writes them."""
    for part in getattr(dataset, "parts", [dataset]):
        figs = getattr(part, "teacher_figures", None)
        where = getattr(part, "root", part)
        if not figs:
            raise ValueError(f"{where}: no {FILENAME}; write it with `dreamcs data teacher-figures {where}` "
                             "(or train with lambda_teacher=0)")
        got = len(next(iter(figs.values())))
        if got != n:
            raise ValueError(f"{where}: {FILENAME} has {got} figures, the model's head predicts {n} (model.teacher_figures)")
