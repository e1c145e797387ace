"""Prompt files: the three formats, clear errors naming the file, stable collision-free run names."""

from __future__ import annotations

import json

import pytest

from dreamcs.evaluate.prompts import PromptFileError, load_prompts, prompt_slug, run_name


def test_json_list_object_and_lines(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(["a chair", "  a   red car ", "a chair", ""]))
    (tmp_path / "b.json").write_text(json.dumps({"set1": ["a chair"], "set2": ["a horse", "a lamp"]}))
    (tmp_path / "c.txt").write_text("# comment\na chair\n\na horse\n")
    assert load_prompts(tmp_path / "a.json") == ["a chair", "a red car"]
    assert load_prompts(tmp_path / "b.json") == ["a chair", "a horse", "a lamp"]
    assert load_prompts(tmp_path / "c.txt") == ["a chair", "a horse"]


@pytest.mark.parametrize("content, reason", [
    ('["a chair", 3]', "[1] is a int"),
    ('{"x": "a chair"}', "key 'x' must be a list"),
    ('["a chair",', "invalid JSON at line 1"),
    ("# only a comment\n\n", "holds no prompts"),
])
def test_bad_files_name_the_file_and_reason(tmp_path, content, reason):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(PromptFileError) as e:
        load_prompts(p)
    assert str(p) in str(e.value) and reason in str(e.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(PromptFileError, match="file not found"):
        load_prompts(tmp_path / "nope.txt")
    with pytest.raises(PromptFileError, match="is a directory"):
        load_prompts(tmp_path)


def test_dreamfusion_library(shared_data):
    prompts = load_prompts(shared_data / "prompts" / "dreamfusion_prompt_library.json")
    assert len(prompts) > 400 and all(isinstance(p, str) and p for p in prompts)
    names = {run_name(p, 0) for p in prompts}
    assert len(names) == len(prompts)  # every prompt its own folder


def test_slug_is_safe_stable_and_distinguishes_lookalikes():
    a, b = prompt_slug("A chair!"), prompt_slug("a chair?")
    assert a != b and a.startswith("a-chair-") and b.startswith("a-chair-")
    assert prompt_slug("A chair!") == a
    long = prompt_slug("x" * 300)
    assert len(long) <= 48 + 7 and "/" not in prompt_slug("a/b\\c:d")
    assert run_name("a chair", 3).endswith("-s3")
