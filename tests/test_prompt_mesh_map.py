"""dreamcs.utils.read_prompt_mesh_map: the {prompt: mesh} JSON maps of `evaluate janus --gt` and
`data harvest` references."""

from __future__ import annotations

import json

import pytest

from dreamcs.utils import read_prompt_mesh_map


def test_relative_paths_and_prompts_normalised(tmp_path):
    (tmp_path / "m.obj").write_text("v 0 0 0\n")
    f = tmp_path / "map.json"
    f.write_text(json.dumps({"a   red\tchair": "m.obj"}))
    assert read_prompt_mesh_map(f) == {"a red chair": tmp_path / "m.obj"}


@pytest.mark.parametrize("content, message", [
    (None, "ground-truth map not found"),
    ("{not json", "invalid JSON at line 1"),
    (json.dumps(["a chair"]), "must be a JSON object"),
    (json.dumps({"x": "missing.obj"}), "the mesh for 'x' does not exist"),
])
def test_bad_maps_name_the_file_and_the_reason(tmp_path, content, message):
    f = tmp_path / "gt.json"
    if content is not None:
        f.write_text(content)
    with pytest.raises(ValueError, match=message) as e:
        read_prompt_mesh_map(f, "ground-truth map")
    assert str(f) in str(e.value)
