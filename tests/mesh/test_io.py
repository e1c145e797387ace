"""load_mesh / save_mesh: every format, every bad input, the cleaning steps."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import trimesh

from dreamcs.mesh import MESH_EXTENSIONS, MeshError, load_mesh, save_mesh

# ---------------------------------------------------------------- bad inputs


def _write(path, data):
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def _garbage(n=4096, seed=0):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


BAD_FILES = {
    "empty.obj": (b"", "empty"),
    "empty.glb": (b"", "empty"),
    "garbage.ply": (_garbage(), "unreadable"),
    "garbage.glb": (_garbage(), "unreadable"),
    "garbage.off": (_garbage(), ""),
    "garbage.obj": (_garbage(), "no faces"),
    "garbage.stl": (_garbage(), ""),
    "nan.obj": ("v 0 0 0\nv nan 0 0\nv 1 1 0\nf 1 2 3\n", "nan"),
    "inf.obj": ("v 0 0 0\nv 1 inf 0\nv 1 1 0\nf 1 2 3\n", "infinite"),
    "nan.ply": (
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 nan\n0 1 0\n3 0 1 2\n",
        "nan",
    ),
    "faces_only.obj": ("f 1 2 3\nf 2 3 4\n", "no faces"),
    "points_only.obj": ("v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no faces"),
    "degenerate_only.obj": ("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\nf 1 1 2\n", "no faces"),
    "points.ply": (
        "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
        "end_header\n0 0 0\n1 0 0\n",
        "no faces",
    ),
    "bad_header.off": ("OFF\n3 1\n0 0 0\n", ""),
    "index_out_of_range.ply": (
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 5\n",
        "out of range",
    ),
    "index_out_of_range.obj": ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", ""),
    "mesh.xyz": ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "unknown mesh format"),
    "noext": ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "unknown mesh format"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_raises_mesh_error_naming_file(tmp_path, name):
    data, reason_part = BAD_FILES[name]
    path = _write(tmp_path / name, data)
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    err = info.value
    assert err.path == str(path)
    assert name in str(err)
    assert err.reason and err.reason in str(err)
    assert reason_part.lower() in err.reason.lower()


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(MeshError, match="not found") as info:
        load_mesh(tmp_path / "nope.obj")
    assert "nope.obj" in str(info.value)
    d = tmp_path / "folder.obj"
    d.mkdir()
    with pytest.raises(MeshError, match="directory") as info:
        load_mesh(d)
    assert info.value.path == str(d)


def test_mesh_error_is_value_error_and_pickles():
    err = MeshError("/x/y.obj", "no faces")
    assert isinstance(err, ValueError)
    assert str(err) == "/x/y.obj: no faces"
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.reason) == (err.path, err.reason)


# ---------------------------------------------------------------- round trips


def _two_part_mesh() -> trimesh.Trimesh:
    """An icosphere and a box apart from it: two components, known area."""
    a = trimesh.creation.icosphere(subdivisions=2, radius=0.7)
    b = trimesh.creation.box(extents=(0.5, 1.0, 1.5))
    b.apply_translation([3.0, 0.0, 0.0])
    return trimesh.util.concatenate([a, b])


EXPORTS = {
    "obj": lambda m: m.export(file_type="obj"),
    "ply_ascii": lambda m: m.export(file_type="ply", encoding="ascii"),
    "ply_binary": lambda m: m.export(file_type="ply", encoding="binary"),
    "off": lambda m: m.export(file_type="off"),
    "stl": lambda m: m.export(file_type="stl"),
    "stl_ascii": lambda m: m.export(file_type="stl_ascii"),
    "glb": lambda m: m.export(file_type="glb"),
}


@pytest.mark.parametrize("fmt", sorted(EXPORTS))
def test_format_round_trip(tmp_path, fmt):
    mesh = _two_part_mesh()
    ext = {"ply_ascii": "ply", "ply_binary": "ply", "stl_ascii": "stl"}.get(fmt, fmt)
    path = _write(tmp_path / f"m.{ext}", EXPORTS[fmt](mesh))
    out = load_mesh(path)
    assert out.faces.shape == mesh.faces.shape
    # STL stores 3 vertices per face: the merge must bring them back to the shared count.
    assert len(out.vertices) == len(mesh.vertices)
    assert out.area == pytest.approx(mesh.area, rel=1e-5)
    np.testing.assert_allclose(out.bounds, mesh.bounds, atol=1e-5)
    assert out.is_watertight
    assert out.metadata["file_path"] == str(path)


def test_glb_scene_node_transforms_and_non_triangle_geometry(tmp_path):
    box = trimesh.creation.box(extents=(1, 1, 1))
    scene = trimesh.Scene()
    scene.add_geometry(box, node_name="a", geom_name="box")
    # The same geometry instanced again, scaled by 2 and moved: the loader must bake the transform.
    tf = np.diag([2.0, 2.0, 2.0, 1.0])
    tf[:3, 3] = [5.0, 0.0, 0.0]
    scene.add_geometry(box, node_name="b", geom_name="box", transform=tf)
    scene.add_geometry(trimesh.PointCloud(np.random.default_rng(0).random((10, 3)) + 20.0), geom_name="pts")
    path = _write(tmp_path / "scene.glb", scene.export(file_type="glb"))
    out = load_mesh(path)
    assert len(out.faces) == 24
    assert out.area == pytest.approx(6.0 + 24.0, rel=1e-6)
    np.testing.assert_allclose(out.bounds, [[-0.5, -1.0, -1.0], [6.0, 1.0, 1.0]], atol=1e-6)


def test_gltf_with_external_buffer(tmp_path):
    mesh = _two_part_mesh()
    files = mesh.export(file_type="gltf")  # dict of file name -> bytes
    for name, data in files.items():
        _write(tmp_path / name, data)
    out = load_mesh(tmp_path / "model.gltf")
    assert out.area == pytest.approx(mesh.area, rel=1e-5)


def test_quads_and_ngons_are_triangulated(tmp_path):
    # A unit cube of 6 quads, plus a separate pentagon.
    cube = (
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0 0 1\nv 1 0 1\nv 1 1 1\nv 0 1 1\n"
        "f 1 4 3 2\nf 5 6 7 8\nf 1 2 6 5\nf 2 3 7 6\nf 3 4 8 7\nf 4 1 5 8\n"
        "v 3 0 0\nv 4 0 0\nv 4 1 0\nv 3.5 1.5 0\nv 3 1 0\nf 9 10 11 12 13\n"
    )
    out = load_mesh(_write(tmp_path / "quads.obj", cube))
    assert out.faces.shape == (12 + 3, 3)
    assert out.area == pytest.approx(6.0 + 1.25)
    off = "OFF\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n"
    assert load_mesh(_write(tmp_path / "quad.off", off)).faces.shape == (2, 3)


def test_kaolin_armchair_quads(shared_data):
    path = shared_data / "meshes" / "kaolin_samples" / "armchair.obj"
    n_quads = sum(1 for line in path.read_text().splitlines() if line.startswith("f "))
    out = load_mesh(path)
    assert out.faces.shape == (2 * n_quads, 3)
    assert np.isfinite(out.vertices).all()


def test_duplicates_and_degenerates_are_removed(tmp_path):
    # Two triangles of a square written with unshared vertices, the same triangle again in the
    # other winding, a face with a repeated index and a zero-area (collinear) face.
    text = (
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 0 0\nv 1 1 0\nv 0 1 0\nv 2 0 0\n"
        "f 1 2 3\nf 4 5 6\nf 3 2 1\nf 1 1 2\nf 1 2 7\n"
    )
    out = load_mesh(_write(tmp_path / "dups.obj", text))
    assert len(out.faces) == 2
    assert len(out.vertices) == 4
    assert out.area == pytest.approx(1.0)


def _strip_ply_header(fmt: str, n_faces_line: str) -> bytes:
    return (
        f"ply\nformat {fmt} 1.0\nelement vertex 6\nproperty float x\nproperty float y\nproperty float z\n"
        f"element tristrips 1\nproperty list int int vertex_indices\n{n_faces_line}end_header\n"
    ).encode()


STRIP_VERTS = [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0), (2, 0, 0), (2, 1, 0)]
# Strip 0 1 2 3, restart, 2 3 4 5: a 2x1 rectangle of four triangles.
STRIP = [0, 1, 2, 3, -1, 2, 3, 4, 5]


def test_ply_triangle_strips_ascii_and_binary(tmp_path):
    ascii_body = "".join(f"{x} {y} {z}\n" for x, y, z in STRIP_VERTS) + f"{len(STRIP)} " + " ".join(map(str, STRIP)) + "\n"
    a = _write(tmp_path / "strip_ascii.ply", _strip_ply_header("ascii", "") + ascii_body.encode())
    b_body = b"".join(struct.pack("<3f", *v) for v in STRIP_VERTS)
    b_body += struct.pack("<i", len(STRIP)) + struct.pack(f"<{len(STRIP)}i", *STRIP)
    b = _write(tmp_path / "strip_bin.ply", _strip_ply_header("binary_little_endian", "") + b_body)
    for path in (a, b):
        out = load_mesh(path)
        assert len(out.faces) == 4
        assert out.area == pytest.approx(2.0)
        # The alternate triangles are flipped, so all normals agree.
        normals = out.face_normals
        assert np.allclose(normals, normals[0], atol=1e-6)


def test_every_shared_mesh_loads(shared_data):
    files = sorted(p for p in (shared_data / "meshes").rglob("*") if p.suffix.lower() in MESH_EXTENSIONS)
    assert len(files) > 100
    for path in files:
        out = load_mesh(path)
        assert len(out.faces) > 0 and np.isfinite(out.vertices).all(), path


# ---------------------------------------------------------------- save


@pytest.mark.parametrize("ext", ["obj", "ply", "glb", "off", "stl"])
def test_save_mesh_round_trip(tmp_path, ext):
    mesh = _two_part_mesh()
    path = save_mesh(mesh, tmp_path / "sub" / f"out.{ext}")
    assert path.exists()
    assert [p.name for p in path.parent.iterdir()] == [f"out.{ext}"]  # no temp file left behind
    out = load_mesh(path)
    assert out.area == pytest.approx(mesh.area, rel=1e-5)
    assert len(out.faces) == len(mesh.faces)


def test_save_mesh_unknown_extension(tmp_path):
    with pytest.raises(MeshError, match="cannot save"):
        save_mesh(_two_part_mesh(), tmp_path / "out.xyz")
    assert not (tmp_path / "out.xyz").exists()


def test_binary_ply_with_mixed_polygon_sizes(tmp_path):
    # trimesh's own binary reader needs equal list lengths; a quad plus a triangle must still load.
    verts = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (2, 0, 0)]
    header = (
        b"ply\nformat binary_big_endian 1.0\nelement vertex 5\nproperty double x\nproperty double y\n"
        b"property double z\nelement face 2\nproperty list uchar uint vertex_indices\nend_header\n"
    )
    body = b"".join(struct.pack(">3d", *v) for v in verts)
    body += struct.pack(">B4I", 4, 0, 1, 2, 3) + struct.pack(">B3I", 3, 1, 4, 2)
    out = load_mesh(_write(tmp_path / "mixed.ply", header + body))
    assert len(out.faces) == 3
    assert out.area == pytest.approx(1.5)
    truncated = _write(tmp_path / "truncated.ply", header + body[:-6])
    with pytest.raises(MeshError, match="unreadable"):
        load_mesh(truncated)


def test_shipped_samples_load(sample_dir):
    files = sorted(sample_dir.glob("*.obj"))
    assert len(files) == 6
    for path in files:
        out = load_mesh(path)
        assert out.faces.shape[1] == 3 and len(out.faces) > 0
        assert out.faces.max() < len(out.vertices)
        assert len(np.unique(out.vertices, axis=0)) == len(out.vertices)  # duplicates merged
