"""The review web app: a local HTTP server (standard library only) over one dataset folder.

    GET  /                         the page (``dreamcs/assets/webapp/index.html``)
    GET  /static/<file>            the page's scripts and the vendored three.js
    GET  /api/state?reviewer=R     dataset, queue length, R's answers and where R stopped (resume)
    GET  /api/items?offset=O&limit=N&reviewer=R   one page of the review queue (server-side paging)
    GET  /api/mesh?id=ID           {"vertices": [x, y, z, ...], "faces": [i, j, k, ...]} of an item
    GET  /api/agreement            machine vs human and reviewer vs reviewer figures
    POST /api/review               {"id", "reviewer", "alignment", "realism", "fidelity"} -> saved

The queue is ``sampler.review_queue`` (stratified, seeded), so reopening the app continues where a
reviewer stopped: the first queue item that reviewer has not answered. Each answer is appended
(fsynced) to ``calibration.jsonl`` before the reply; the table (items.parquet, split files, stats)
is rewritten by a background writer shortly after, coalescing quick answers, and on ``close()``;
a table left behind by a crash is brought up to the log when the app opens (``records.reconcile``).
"""

from __future__ import annotations

import json
import mimetypes
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from dreamcs.data.review.agreement import agreement, latest_answers, machine_scores
from dreamcs.data.review.records import read_log, reconcile, record_answer, save_rows, thresholds
from dreamcs.data.review.sampler import review_queue, strata_counts
from dreamcs.data.store import SCORE_COLS, load_arrays, load_mesh_arrays, read_table

MAX_PAGE = 200


def webapp_dir() -> Path:
    """The folder of the page's files inside the installed package."""
    return Path(str(resources.files("dreamcs") / "assets" / "webapp"))


class ReviewApp:
    """The state behind the server: the table, the log, the queue; every method returns JSON-able data."""

    def __init__(self, root: str | os.PathLike, reviewer: str = "reviewer", seed: int = 0,
                 by: tuple[str, ...] = ("label", "source", "score_bin"), write_delay: float = 0.3) -> None:
        self.root = Path(root)
        self.rows = read_table(self.root)
        if not (self.root / "items.parquet").is_file():
            raise FileNotFoundError(f"{self.root / 'items.parquet'}: the review app needs a dataset built with `dreamcs data build`")
        self.by_id = {r["id"]: r for r in self.rows}
        self.log = read_log(self.root)
        self.reviewer, self.seed, self.by = reviewer, seed, tuple(by)
        self.thresholds = thresholds(self.root)
        self.queue = review_queue(self.rows, seed=seed, by=self.by, thresholds=self.thresholds)
        self.lock = threading.Lock()
        reconcile(self.root, self.rows, self.log)
        self.write_delay = write_delay
        self._dirty, self._closed = threading.Event(), False
        self._writer = threading.Thread(target=self._write_loop, daemon=True)
        self._writer.start()

    def _write_loop(self) -> None:
        while not self._closed:
            if not self._dirty.wait(0.5):
                continue
            time.sleep(self.write_delay)  # let quick answers pile up into one rewrite
            self.flush()

    def flush(self) -> None:
        """Rewrite the table now if answers are pending."""
        with self.lock:
            if self._dirty.is_set():
                self._dirty.clear()
                save_rows(self.root, self.rows)

    def close(self) -> None:
        """Write what is pending and stop the writer."""
        self._closed = True
        self.flush()
        self._writer.join(timeout=5)

    def _answers(self, reviewer: str) -> dict[str, dict[str, float]]:
        return {i: v for (i, who), v in latest_answers(self.log).items() if who == reviewer}

    def state(self, reviewer: str | None = None) -> dict[str, Any]:
        who = reviewer or self.reviewer
        with self.lock:
            mine = self._answers(who)
            position = next((k for k, i in enumerate(self.queue) if i not in mine), len(self.queue))
            pmin, dmax = self.thresholds
            return {"dataset": str(self.root), "reviewer": who, "items": len(self.queue), "answered": len(mine),
                    "position": position, "seed": self.seed, "strata_by": list(self.by),
                    "strata": strata_counts(self.rows, self.by, self.thresholds), "preferred_min": pmin, "dispreferred_max": dmax}

    def _summary(self, pos: int, reviewer: str, mine: dict[str, dict[str, float]], n_rev: dict[str, int]) -> dict[str, Any]:
        r = self.by_id[self.queue[pos]]
        try:
            details = json.loads(r.get("details") or "{}")
        except json.JSONDecodeError:
            details = r.get("details")
        return {"position": pos, "id": r["id"], "prompt": r.get("prompt"), "caption": r.get("caption"),
                "source": r.get("source"), "split": r.get("split"), "label": r.get("label"),
                "score_source": r.get("score_source") or "machine", "provenance": r.get("provenance"),
                "scores": {c: r.get(c) for c in SCORE_COLS}, "machine": machine_scores([r], self.log).get(r["id"], {}),
                "details": details, "defect": r.get("defect"), "n_faces": r.get("n_faces"),
                "mine": mine.get(r["id"]), "reviews": n_rev.get(r["id"], 0)}

    def items(self, offset: int = 0, limit: int = 20, reviewer: str | None = None) -> dict[str, Any]:
        if offset < 0 or limit < 1:
            raise ValueError(f"offset must be >= 0 and limit >= 1, got offset={offset} limit={limit}")
        who = reviewer or self.reviewer
        with self.lock:
            mine = self._answers(who)
            n_rev: dict[str, int] = {}
            for item, _ in latest_answers(self.log):
                n_rev[item] = n_rev.get(item, 0) + 1
            end = min(len(self.queue), offset + min(limit, MAX_PAGE))
            return {"offset": offset, "total": len(self.queue),
                    "items": [self._summary(p, who, mine, n_rev) for p in range(offset, end)]}

    def mesh(self, item_id: str) -> dict[str, Any]:
        row = self.by_id.get(item_id)
        if row is None:
            raise KeyError(f"unknown item id {item_id!r}")
        m = load_mesh_arrays(self.root, row)
        if m is None:  # no simplified mesh kept: the patched faces of the shard
            v, f = load_arrays(self.root, row)
            m = (v, f.reshape(-1, 3))
        v, f = m
        return {"id": item_id, "vertices": [round(float(x), 5) for x in v.reshape(-1)], "faces": [int(x) for x in f.reshape(-1)]}

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        who = str(body.get("reviewer") or self.reviewer)
        item_id = str(body.get("id") or "")
        with self.lock:
            rec = record_answer(self.root, self.rows, item_id, body, who, log=self.log, save=False)
            self._dirty.set()
            row = self.by_id[item_id]
            return {"ok": True, "record": rec, "item": {c: row.get(c) for c in (*SCORE_COLS, "label", "score_source", "provenance")}}

    def agreement(self) -> dict[str, Any]:
        with self.lock:
            return agreement(self.rows, self.log)


def make_handler(app: ReviewApp) -> type[BaseHTTPRequestHandler]:
    static = webapp_dir()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:  # quiet: the terminal shows the CLI's own lines
            pass

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, obj: Any, status: int = 200) -> None:
            self._send(status, json.dumps(obj).encode("utf-8"), "application/json")

        def _file(self, rel: str) -> None:
            p = (static / rel).resolve()
            if static.resolve() not in p.parents or not p.is_file():  # no escaping the asset folder
                return self._json({"error": f"not found: {rel}"}, 404)
            ctype = "text/javascript" if p.suffix == ".js" else mimetypes.guess_type(p.name)[0] or "application/octet-stream"
            self._send(200, p.read_bytes(), ctype)

        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            u = urlparse(self.path)
            q = {k: v[-1] for k, v in parse_qs(u.query).items()}
            try:
                if u.path in ("/", "/index.html"):
                    return self._file("index.html")
                if u.path.startswith("/static/"):
                    return self._file(u.path[len("/static/"):])
                if u.path == "/api/state":
                    return self._json(app.state(q.get("reviewer")))
                if u.path == "/api/items":
                    return self._json(app.items(int(q.get("offset", 0)), int(q.get("limit", 20)), q.get("reviewer")))
                if u.path == "/api/mesh":
                    return self._json(app.mesh(q.get("id", "")))
                if u.path == "/api/agreement":
                    return self._json(app.agreement())
                return self._json({"error": f"not found: {u.path}"}, 404)
            except KeyError as e:
                return self._json({"error": str(e.args[0]) if e.args else str(e)}, 404)
            except ValueError as e:
                return self._json({"error": str(e)}, 400)

        def do_POST(self) -> None:  # noqa: N802
            if urlparse(self.path).path != "/api/review":
                return self._json({"error": f"not found: {self.path}"}, 404)
            try:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                return self._json(app.answer(body))
            except KeyError as e:
                return self._json({"error": str(e.args[0]) if e.args else str(e)}, 404)
            except ValueError as e:  # json.JSONDecodeError is a ValueError
                return self._json({"error": str(e)}, 400)

    return Handler


def make_server(app: ReviewApp, port: int = 8765, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (port 0: any free port); call ``serve_forever`` on it."""
    return ThreadingHTTPServer((host, port), make_handler(app))
