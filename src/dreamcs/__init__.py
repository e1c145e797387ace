"""dreamcs: geometry-aware text-to-3D generation with unpaired 3D reward supervision (DreamCS).

Stages (each usable alone from Python):
- ``dreamcs.mesh``: load, clean, normalise, simplify, fuse to the 256x64 patch layout, face features.
- ``dreamcs.data``: 3D-MeshPref unpaired preference datasets.
- ``dreamcs.reward``: RewardCS, the mesh+text reward model trained with the Cauchy-Schwarz divergence.
- ``dreamcs.generate``: DMTet + differentiable rendering + SDS + progressive 3D reward guidance.
- ``dreamcs.evaluate``: metrics over prompt sets.
"""

__version__ = "0.1.0"
