"""Settings shared by the evaluate tests (a module of its own: `from conftest import` is ambiguous
when several test folders have a conftest.py)."""

#: dmtet-tiny cut to the bone: 2 steps on an 8^3 grid (the shape means nothing; every path runs).
TINY = ["steps=2", "save_every=1", "mesh_every=0", "geometry.grid_resolution=8", "render.batch_size=1",
        "render.resolution=32", "render.turntable_views=2", "render.turntable_resolution=32"]
