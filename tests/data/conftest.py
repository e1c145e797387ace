"""Small builds shared by the data tests: a handful of sample meshes, a tiny 8 x 16 patch layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dreamcs.data.build import BuildConfig

TINY = dict(n_patches=8, faces_per_patch=16, shard_size=2)


def write_manifest(sample_dir: Path, dst: Path, bad: bool = True) -> Path:
    """A manifest over the sample meshes (object ids shared in pairs), plus one unreadable file."""
    dst.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, p in enumerate(sorted(sample_dir.glob("*.obj"))[:5]):
        q = shutil.copy(p, dst / p.name)
        rec = {"path": str(q), "prompt": f"object number {i}", "object_id": f"obj{i // 2}"}
        if i == 4:
            rec["scores"] = {"alignment": 1, "realism": 2, "fidelity": 3}
        lines.append(rec)
    if bad:
        (dst / "broken.obj").write_text("v 0 0 0\nthis is not an obj\n")
        lines.append({"path": str(dst / "broken.obj"), "prompt": "broken", "id": "broken"})
    man = dst / "manifest.jsonl"
    man.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return man


@pytest.fixture
def manifest(tmp_path, sample_dir) -> Path:
    return write_manifest(sample_dir, tmp_path / "src")


@pytest.fixture
def tiny_cfg(manifest) -> BuildConfig:
    return BuildConfig(sources=[f"manifest:{manifest}"], **TINY)


@pytest.fixture(scope="session")
def built(tmp_path_factory, sample_dir) -> Path:
    """One small dataset built once per session (tests that change it work on a copy)."""
    from dreamcs.data.build import build

    root = tmp_path_factory.mktemp("built")
    man = write_manifest(sample_dir, root / "src")
    build(BuildConfig(sources=[f"manifest:{man}"], **TINY), root / "ds", progress=False)
    return root / "ds"


@pytest.fixture
def built_copy(built, tmp_path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "ds"))
