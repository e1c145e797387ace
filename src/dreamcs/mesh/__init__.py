"""The mesh core: any mesh file to a clean, normalised triangle mesh and its quality figures.

Imports nothing of dreamcs but the shared core (``dreamcs.utils``, ``dreamcs.config``).
"""

from dreamcs.mesh.errors import MeshError
from dreamcs.mesh.io import MESH_EXTENSIONS, load_mesh, save_mesh
from dreamcs.mesh.process import normalize, simplify
from dreamcs.mesh.quality import quality

__all__ = [
    "MESH_EXTENSIONS",
    "MeshError",
    "load_mesh",
    "normalize",
    "quality",
    "save_mesh",
    "simplify",
]

# Fusion and features (fuse, PatchedMesh, face_features, patch_features, patch_centers) are
# exported below by their own module's owner.
from dreamcs.mesh.features import face_features, patch_boundary, patch_centers, patch_features  # noqa: E402
from dreamcs.mesh.fusion import PatchedMesh, fuse  # noqa: E402

__all__ += ["PatchedMesh", "face_features", "fuse", "patch_boundary", "patch_centers", "patch_features"]
