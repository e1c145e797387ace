"""A small PLY reader for what trimesh does not read: triangle strips and binary mixed polygons.

trimesh loads a PLY whose connectivity is a ``tristrips`` element as a bare point cloud, and its
binary reader assumes every list in an element has the same length (so a binary PLY mixing
triangles and quads fails). ``read_ply`` handles both, for ASCII and binary (little and big
endian) files, and returns triangles only: polygons are fan-triangulated and strips unrolled with
every other triangle flipped to keep one winding. ``-1`` in a strip restarts it.
"""

from __future__ import annotations

import os

import numpy as np

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def read_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read ``vertices (V, 3) float64`` and triangle ``faces (F, 3) int64`` from a PLY file.

    Raises ``ValueError`` with a short reason on a malformed file.
    """
    with open(path, "rb") as f:
        data = f.read()
    fmt, elements, body = _parse_header(data)
    if fmt == "ascii":
        values = _read_ascii(elements, body)
    else:
        values = _read_binary(elements, body, "<" if fmt == "binary_little_endian" else ">")
    if "vertex" not in values:
        raise ValueError("no vertex element")
    vert = values["vertex"]
    try:
        vertices = np.column_stack([np.asarray(vert[k], dtype=np.float64) for k in "xyz"])
    except KeyError as exc:
        raise ValueError(f"vertex element lacks property {exc}") from exc
    tris = [np.zeros((0, 3), np.int64)]
    for name, unroll in (("face", fan_triangles), ("tristrips", strip_triangles)):
        if name not in values:
            continue
        rows = values[name].get("vertex_indices", values[name].get("vertex_index"))
        if rows is None:
            raise ValueError(f"{name} element has no vertex_indices list")
        if isinstance(rows, np.ndarray) and rows.ndim == 2:
            if name == "face":
                tris.append(fan_triangles_array(rows.astype(np.int64)))
            else:
                tris.extend(unroll(r) for r in rows.astype(np.int64))
        else:
            tris.extend(unroll(np.asarray(r, dtype=np.int64)) for r in rows)
    return vertices, np.concatenate(tris)


def fan_triangles(poly: np.ndarray) -> np.ndarray:
    """Triangles ``(n-2, 3)`` of one polygon ``(n,)`` by a fan from its first corner."""
    if len(poly) < 3:
        return np.zeros((0, 3), np.int64)
    k = np.arange(1, len(poly) - 1)
    return np.column_stack([np.full(len(k), poly[0]), poly[k], poly[k + 1]])


def fan_triangles_array(polys: np.ndarray) -> np.ndarray:
    """``fan_triangles`` for ``(F, n)`` polygons of one size: returns ``(F * (n - 2), 3)``."""
    n = polys.shape[1]
    if n < 3:
        return np.zeros((0, 3), np.int64)
    k = np.arange(1, n - 1)
    out = np.stack([np.repeat(polys[:, :1], n - 2, axis=1), polys[:, k], polys[:, k + 1]], axis=-1)
    return out.reshape(-1, 3)


def strip_triangles(strip: np.ndarray) -> np.ndarray:
    """Triangles ``(T, 3)`` of one strip list; odd triangles flipped so the winding agrees."""
    out = [np.zeros((0, 3), np.int64)]
    for part in np.split(strip, np.flatnonzero(strip < 0)):
        part = part[part >= 0]
        if len(part) < 3:
            continue
        i = np.arange(len(part) - 2)
        tri = np.column_stack([part[i], part[i + 1], part[i + 2]])
        odd = (i % 2) == 1
        tri[odd] = tri[odd][:, [1, 0, 2]]
        out.append(tri)
    return np.concatenate(out)


def _parse_header(data: bytes):
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise ValueError("not a PLY file (no 'ply' magic or no end_header)")
    nl = data.find(b"\n", end)
    body = data[nl + 1 :] if nl >= 0 else b""
    fmt, elements = None, []
    for raw in data[:end].decode("ascii", errors="replace").splitlines():
        tok = raw.split()
        if not tok:
            continue
        if tok[0] == "format":
            fmt = tok[1]
        elif tok[0] == "element":
            elements.append((tok[1], int(tok[2]), []))
        elif tok[0] == "property" and elements:
            if tok[1] == "list":
                elements[-1][2].append((tok[4], _TYPES[tok[2]], _TYPES[tok[3]]))
            else:
                elements[-1][2].append((tok[2], _TYPES[tok[1]], None))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise ValueError(f"unknown PLY format {fmt!r}")
    return fmt, elements, body


def _read_ascii(elements, body: bytes) -> dict[str, dict]:
    tokens = body.split()
    pos, out = 0, {}
    for name, count, props in elements:
        cols: dict[str, list] = {p[0]: [] for p in props}
        for _ in range(count):
            for pname, _, item in props:
                if item is None:
                    cols[pname].append(float(tokens[pos]))
                    pos += 1
                else:
                    n = int(tokens[pos])
                    cols[pname].append(np.array(tokens[pos + 1 : pos + 1 + n], dtype=np.float64).astype(item))
                    pos += 1 + n
        out[name] = cols
    return out


def _read_binary(elements, body: bytes, endian: str) -> dict[str, dict]:
    pos, out = 0, {}
    for name, count, props in elements:
        if all(item is None for _, _, item in props):
            dt = np.dtype([(p, endian + t) for p, t, _ in props])
            arr = np.frombuffer(body, dtype=dt, count=count, offset=pos)
            out[name] = {p: arr[p] for p, _, _ in props}
            pos += count * dt.itemsize
            continue
        # Fast path: one list property whose rows all have the first row's length.
        if len(props) == 1:
            pname, ct, item = props[0]
            ct_dt = np.dtype(endian + ct)
            n0 = int(np.frombuffer(body, dtype=ct_dt, count=1, offset=pos)[0]) if count else 0
            dt = np.dtype([("n", ct_dt), ("v", endian + item, (n0,))])
            if pos + count * dt.itemsize <= len(body):
                arr = np.frombuffer(body, dtype=dt, count=count, offset=pos)
                if (arr["n"] == n0).all():
                    out[name] = {pname: arr["v"].reshape(count, n0)}
                    pos += count * dt.itemsize
                    continue
        cols: dict[str, list] = {p[0]: [] for p in props}
        for _ in range(count):
            for pname, t, item in props:
                if item is None:
                    cols[pname].append(np.frombuffer(body, endian + t, 1, pos)[0])
                    pos += np.dtype(t).itemsize
                else:
                    n = int(np.frombuffer(body, endian + t, 1, pos)[0])
                    pos += np.dtype(t).itemsize
                    cols[pname].append(np.frombuffer(body, endian + item, n, pos))
                    pos += n * np.dtype(item).itemsize
        out[name] = cols
    return out
