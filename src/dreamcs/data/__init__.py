"""3D-MeshPref: build, store, read and calibrate unpaired mesh preference datasets.

    dreamcs data build --source cap3d:MESHES:captions.csv --out meshpref      # or --preset embedded
    ds = MeshPrefDataset("meshpref", split="train")
    from dreamcs.data.build import BuildConfig, build   # (the submodule ``build`` shadows a package-level name)

Heavy pieces are imported on first use, so ``import dreamcs.data`` stays light.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "MeshPrefDataset": "dreamcs.data.dataset",
    "ConcatMeshPref": "dreamcs.data.dataset",
    "BuildConfig": "dreamcs.data.build",
    "merge": "dreamcs.data.build",
    "SCORERS": "dreamcs.data.scorers",
    "build_scorer": "dreamcs.data.scorers",
    "SourceError": "dreamcs.data.sources",
    "parse_source": "dreamcs.data.sources",
    "calibrate": "dreamcs.data.calibrate",
    "review": "dreamcs.data.calibrate",
    "DEFECTS": "dreamcs.data.defects",
    "apply_defect": "dreamcs.data.defects",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dreamcs.data' has no attribute {name!r}")
