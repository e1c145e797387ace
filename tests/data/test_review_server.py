"""The review web app's endpoints (no browser), answers in calibration.jsonl, `calibrate --fit`."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dreamcs.cli import app as cli
from dreamcs.data.review.records import fit_and_apply, read_log, record_answer
from dreamcs.data.review.sampler import review_queue
from dreamcs.data.review.server import ReviewApp, make_server
from dreamcs.data.store import load_mesh_arrays, read_table


@pytest.fixture
def served(built_copy):
    app = ReviewApp(built_copy, reviewer="ann", seed=0)
    httpd = make_server(app, 0)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield app, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    app.close()


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _post(url, body):
    req = urllib.request.Request(url + "/api/review", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_state_pages_and_mesh(served, built_copy):
    app, url = served
    rows = read_table(built_copy)
    st = _get(url + "/api/state")
    assert st["items"] == len(rows) and st["answered"] == 0 and st["position"] == 0 and st["reviewer"] == "ann"
    assert sum(st["strata"].values()) == len(rows)
    p1, p2 = _get(url + "/api/items?offset=0&limit=2"), _get(url + "/api/items?offset=2&limit=2")
    ids = [i["id"] for i in p1["items"] + p2["items"]]
    assert p1["total"] == len(rows) and len(p1["items"]) == 2 and ids == app.queue[:4]  # server-side pages of the queue
    assert len(set(ids)) == 4
    it = p1["items"][0]
    row = next(r for r in rows if r["id"] == it["id"])
    assert it["prompt"] == row["prompt"] and it["scores"]["overall"] == row["overall"] and it["machine"].get("alignment") == row["alignment"]  # None: a prompt the scorer cannot check
    assert _get(url + f"/api/items?offset={len(rows)}&limit=5")["items"] == []
    m = _get(url + "/api/mesh?id=" + urllib.parse.quote(it["id"]))
    v, f = load_mesh_arrays(built_copy, row)
    assert len(m["vertices"]) == v.size and m["faces"] == f.reshape(-1).tolist()
    assert np.allclose(m["vertices"], v.reshape(-1), atol=1e-4)
    page = urllib.request.urlopen(url + "/").read().decode()
    assert "/static/app.js" in page and "importmap" in page
    three = urllib.request.urlopen(url + "/static/vendor/three.module.min.js").read()
    assert len(three) > 100_000 and b"REVISION" in three
    for bad in ("/static/../../__init__.py", "/static/%2e%2e/%2e%2e/config.py", "/api/nothing"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + bad)
        assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url + "/api/mesh?id=nope")
    assert e.value.code == 404 and "unknown item id 'nope'" in e.value.read().decode()


def test_answers_are_saved_resumed_and_relabel(served, built_copy):
    app, url = served
    q = app.queue
    code, res = _post(url, {"id": q[0], "reviewer": "ann", "alignment": 5, "realism": 4.5, "fidelity": 4})
    assert code == 200 and res["item"]["overall"] == pytest.approx(4.5) and res["item"]["label"] == 1
    _post(url, {"id": q[1], "reviewer": "ann", "alignment": 0, "realism": 1, "fidelity": 0.5})
    log = read_log(built_copy)
    assert [r["id"] for r in log] == q[:2] and all(r["reviewer"] == "ann" and r["time"].endswith("+00:00") for r in log)
    assert log[1]["human"] == {"alignment": 0.0, "realism": 1.0, "fidelity": 0.5} and "overall" in log[1]["machine"]
    deadline = time.time() + 20  # the background writer rewrites the table shortly after
    while time.time() < deadline and all(r["score_source"] == "machine" for r in read_table(built_copy)):
        time.sleep(0.1)
    assert any(r["score_source"] == "human" for r in read_table(built_copy))  # written without a flush
    app.flush()
    rows = {r["id"]: r for r in read_table(built_copy)}  # the table on disk changed, not only the server's copy
    assert (rows[q[0]]["score_source"], rows[q[0]]["provenance"], rows[q[0]]["label"]) == ("human", "reviewer:ann", 1)
    assert (rows[q[1]]["overall"], rows[q[1]]["label"]) == (0.5, 0)
    # resumable: a fresh app (a reopened page) continues after ann's answers; bob starts at the top
    app2 = ReviewApp(built_copy, reviewer="ann", seed=0)
    assert app2.state()["position"] == 2 and app2.state()["answered"] == 2
    assert app2.state("bob")["position"] == 0
    _post(url, {"id": q[0], "reviewer": "bob", "alignment": 4, "realism": 4.5, "fidelity": 4})
    ag = _get(url + "/api/agreement")
    assert ag["reviewers"] == {"ann": 2, "bob": 1}
    assert ag["between_reviewers"]["alignment"] == {"n": 1, "spearman": None, "mae": 1.0}
    assert _get(url + "/api/items?offset=0&limit=1&reviewer=bob")["items"][0]["mine"]["alignment"] == 4.0
    app.flush()  # two reviewers on one item: the row holds the mean of their answers, and the log says so
    row = next(r for r in read_table(built_copy) if r["id"] == q[0])
    assert (row["alignment"], row["realism"], row["provenance"]) == (4.5, 4.5, "reviewers:ann+bob")
    assert read_log(built_copy)[-1]["applied"] == {"alignment": 4.5, "realism": 4.5, "fidelity": 4.0}
    from dreamcs.data.calibrate import apply_reviews

    fresh = [dict(r, score_source=None, alignment=0.0, realism=0.0, fidelity=0.0) for r in read_table(built_copy)]  # machine rows
    apply_reviews(fresh, read_log(built_copy))
    assert next(r for r in fresh if r["id"] == q[0])["alignment"] == 4.5


@pytest.mark.parametrize("body, code, reason", [
    ({"id": "nope", "alignment": 1, "realism": 1, "fidelity": 1}, 404, "unknown item id 'nope'"),
    ({"alignment": 6, "realism": 1, "fidelity": 1}, 400, "alignment = 6.0 is outside [0, 5]"),
    ({"alignment": 1, "realism": "x", "fidelity": 1}, 400, "realism is not a number"),
    ({"alignment": 1, "realism": 1}, 400, "lacks 'fidelity'"),
    ({"alignment": 1, "realism": 1, "fidelity": 1, "reviewer": " "}, 400, "a reviewer name is needed"),
])
def test_bad_answers_are_refused_and_change_nothing(served, built_copy, body, code, reason):
    app, url = served
    before = (built_copy / "items.parquet").read_bytes()
    body = {"id": app.queue[0], **body}
    got, res = _post(url, body)
    assert got == code and reason in res["error"]
    assert (built_copy / "items.parquet").read_bytes() == before and not (built_copy / "calibration.jsonl").exists()


def test_fit_applies_to_unreviewed_items_survives_rebuild_and_never_compounds(built_copy):
    from dreamcs.data.build import BuildConfig, build

    rows = read_table(built_copy)
    machine = {r["id"]: r for r in rows}
    # the geometric scorer leaves alignment unknown; the manifest's given item has all three and a low score
    given = next(i for i, r in machine.items() if r["alignment"] is not None)
    reviewed = [given, *sorted(i for i in machine if i != given)[:2]]
    for i in reviewed:  # the reviewer rates realism and fidelity 1 point below the machine
        m = machine[i]
        record_answer(built_copy, rows, i, {"alignment": 3.0, "realism": m["realism"] - 1, "fidelity": m["fidelity"] - 1}, "ann")
    res = fit_and_apply(built_copy, "linear")
    assert res["fitted"] == ["fidelity", "realism"]  # alignment: one machine score among the reviewed
    assert res["changed"] == len(machine) - 3 and res["agreement"]["machine_vs_human"]["realism"]["n"] == 3
    assert res["agreement"]["machine_vs_human"]["realism"]["mae"] == pytest.approx(1.0)
    after = {r["id"]: r for r in read_table(built_copy)}
    for i, r in after.items():
        if i in reviewed:
            assert r["score_source"] == "human"
            continue
        assert r["score_source"] == "calibrated" and r["provenance"] == "fit:linear:3 reviewed"
        assert r["machine_overall"] == machine[i]["overall"]
        assert r["realism"] == pytest.approx(machine[i]["realism"] - 1, abs=1e-5)  # the fitted line is y = x - 1
        assert r["overall"] == pytest.approx(np.mean([r["realism"], r["fidelity"]]), abs=1e-5)
        assert r["label"] == (1 if r["overall"] >= 4 else 0 if r["overall"] <= 3.5 else -1)
    again = fit_and_apply(built_copy, "linear")  # a second fit starts from the machine's scores
    assert {r["id"]: r["overall"] for r in read_table(built_copy)} == {i: r["overall"] for i, r in after.items()}
    assert again["changed"] == res["changed"]
    import yaml

    cfg = BuildConfig(sources=yaml.safe_load((built_copy / "config.yaml").read_text())["sources"], n_patches=8, faces_per_patch=16, shard_size=2)
    build(cfg, built_copy, retry_failed=True, progress=False)  # a rebuild re-applies reviews and the fit
    rebuilt = {r["id"]: r for r in read_table(built_copy)}
    assert {i: (r["overall"], r["score_source"], r["label"]) for i, r in rebuilt.items()} == \
        {i: (r["overall"], r["score_source"], r["label"]) for i, r in after.items()}


def test_cli_calibrate_fit_prints_the_agreement_table(built_copy):
    rows = read_table(built_copy)
    picked = sorted(rows, key=lambda r: r["alignment"] is None)[:3]  # the given item (machine realism 2) first
    for k, r in enumerate(picked):
        record_answer(built_copy, rows, r["id"], {"alignment": 1 + k, "realism": 2, "fidelity": 3 - k}, "ann")
    runner = CliRunner()
    res = runner.invoke(cli, ["data", "calibrate", str(built_copy), "--fit", "isotonic"])
    assert res.exit_code == 0, res.output
    assert "Spearman" in res.output and "alignment" in res.output and "ann (3)" in res.output
    assert f"isotonic correction applied to {len(rows) - 3} unreviewed items" in res.output
    assert "fitted: fidelity, realism" in res.output
    assert json.loads((built_copy / "calibration.jsonl").read_text().splitlines()[-1])["fit"] == "isotonic"
    res = runner.invoke(cli, ["data", "calibrate", str(built_copy), "--fit", "cubic"])
    assert res.exit_code == 2 and "unknown fit 'cubic'" in res.output
    res = runner.invoke(cli, ["data", "calibrate", str(built_copy)])
    assert res.exit_code == 2 and "--overrides" in res.output


def test_fit_without_reviews_says_so(built_copy):
    with pytest.raises(ValueError, match="no human reviews to fit on"):
        fit_and_apply(built_copy, "isotonic")


def test_a_table_behind_its_log_is_reconciled_on_open(built_copy):
    rows = read_table(built_copy)
    item = rows[-1]["id"]
    # as after a crash between the log append and the table rewrite
    record_answer(built_copy, rows, item, {"alignment": 0, "realism": 0.5, "fidelity": 1}, "ann", save=False)
    assert next(r for r in read_table(built_copy) if r["id"] == item)["score_source"] == "machine"
    app = ReviewApp(built_copy, reviewer="ann")
    app.close()
    row = next(r for r in read_table(built_copy) if r["id"] == item)
    assert (row["overall"], row["label"], row["score_source"]) == (0.5, 0, "human")
    assert app.state()["answered"] == 1


def test_cli_review_serves_until_interrupted(built_copy):
    import re
    import signal
    import subprocess
    import sys

    first = review_queue(read_table(built_copy))[0]  # the CLI's default seed and strata
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen([sys.executable, "-m", "dreamcs.cli", "data", "review", str(built_copy), "--port", "0", "--no-browser",
                          "--reviewer", "ann b"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                         # started with SIGINT ignored (as a script's background job is): Ctrl-C must still stop it
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        line = p.stdout.readline()
        m = re.search(r"serving (http://127\.0\.0\.1:\d+)/\?reviewer=ann%20b", line)
        assert m, line
        st = _get(m.group(1) + "/api/state")
        assert st["reviewer"] == "ann b" and st["items"] == len(read_table(built_copy))
        code, _ = _post(m.group(1), {"id": first, "alignment": 1, "realism": 1, "fidelity": 1})
        assert code == 200
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
    assert p.returncode == 0 and "answers are saved in" in out
    row = next(r for r in read_table(built_copy) if r["id"] == first)
    assert (row["overall"], row["provenance"]) == (1.0, "reviewer:ann b")  # the table was written on the way out


def test_review_refuses_folders_it_cannot_write_and_bad_strata(built_copy, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["data", "review", str(built_copy), "--no-browser", "--strata", "label,colour"])
    assert res.exit_code == 2 and "unknown stratum key 'colour'" in res.output
    (built_copy / "items.parquet").unlink()  # a folder downloaded from the Hub: split files only
    with pytest.raises(FileNotFoundError, match="items.parquet: the review app needs a dataset built"):
        ReviewApp(built_copy)
    res = runner.invoke(cli, ["data", "review", str(tmp_path / "missing"), "--no-browser"])
    assert res.exit_code == 2 and "not a dataset" in res.output
