"""Small shared helpers: atomic file writes, seeding, content hashes."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a killed process leaves the old file or the new one, never half."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    return p


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk (a killed run keeps every finished line)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSONL file, skipping a torn last line (what a kill mid-write leaves)."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    with open(p, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so that a CPU run repeats exactly."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def sha1_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def parse_shard(spec: str | None) -> tuple[int, int]:
    """``"i/n"`` (0 <= i < n) -> (i, n); None -> (0, 1). The ``--shard`` option of every batch job."""
    if spec is None:
        return 0, 1
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard {spec!r}: expected i/n with integers, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {spec!r}: need 0 <= i < n")
    return i, n


def read_prompt_mesh_map(path: str | os.PathLike, what: str = "prompt -> mesh map") -> dict[str, Path]:
    """``{prompt: mesh path}`` from a JSON object of strings; relative paths are taken from the file's
    folder, prompts whitespace-normalised. Any bad input (missing file or mesh, bad JSON, wrong
    shape) is a ``ValueError`` naming the file (and the prompt)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: {what} not found")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: invalid JSON at line {e.lineno}: {e.msg}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"{p}: a {what} must be a JSON object of prompt -> mesh path strings")
    out = {}
    for prompt, mesh in data.items():
        m = Path(mesh) if Path(mesh).is_absolute() else p.parent / mesh
        if not m.is_file():
            raise ValueError(f"{p}: the mesh for {prompt!r} does not exist: {m}")
        out[" ".join(prompt.split())] = m
    return out


def take_rows(x: Any, index: Any) -> Any:
    """``x[index]`` for a tensor ``x`` (N, ...) and an integer index tensor of any shape (...) ->
    (*index.shape, ...), with a deterministic backward. Advanced indexing's backward on the CPU adds
    float32 gradients in an order, and so with a last bit, that varies from call to call when rows repeat
    (a guided generation drifted apart from step ~60 on); ``index_select``'s backward (``index_add_``)
    gives the same bits on every call (tests/test_take_rows.py)."""
    return x.index_select(0, index.reshape(-1)).reshape(*index.shape, *x.shape[1:])
