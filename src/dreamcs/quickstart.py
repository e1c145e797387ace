"""`dreamcs quickstart` (what `make demo` runs): the whole method offline, on embedded defaults.

    1. mesh core: the sample meshes fused to the 256x64 patch layout (a table);
    2. data: the embedded 3D-MeshPref dataset, built or reused;
    3. reward: RewardCS (small preset) trained on it, or reused, then evaluated on the test split;
    4. generation: DMTet guided by RewardCS, with and without the reward, when a prior is available;
    5. report: ``OUT/report.html`` with the tables and curves.

Every step reuses what an earlier run left in ``OUT`` (a killed demo resumes where it stopped).
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dreamcs.config import save_config
from dreamcs.utils import atomic_write_text, read_jsonl

SAMPLES = Path(__file__).resolve().parent / "assets" / "samples"


@dataclass
class QuickstartConfig:
    out: str = "demo"
    """Output folder: dataset, reward run, generation runs and report.html."""
    dataset: str | None = None
    """An existing MeshPref dataset to use instead of building one from ``sources``."""
    sources: list[str] = field(default_factory=lambda: ["embedded"])
    """Dataset sources (``dreamcs data build --source`` specs); the embedded set by default."""
    workers: int = 2
    """Processes for the dataset build."""
    reward_preset: str = "small"
    """RewardCS preset trained by the demo (small, base, tiny)."""
    reward_steps: int = 200
    reward_batch_size: int = 8
    generate: bool = True
    """Run the generation step (skipped with a message when no prior is available)."""
    generate_config: str = "dmtet-embedded"
    generate_steps: int = 100
    prompts: list[str] = field(default_factory=lambda: ["a chair", "a round table", "a bushy tree"])
    seed: int = 0


def _mesh_table(console: Console) -> list[dict[str, Any]]:
    from dreamcs.mesh import fuse, load_mesh, normalize, quality

    rows = []
    for path in sorted(SAMPLES.glob("*.obj")):
        mesh = normalize(load_mesh(path))
        q = quality(mesh)
        t0 = time.perf_counter()
        pm = fuse(mesh)
        ms = (time.perf_counter() - t0) * 1e3
        rows.append({
            "mesh": path.stem.split("__")[-1].removeprefix("s_"), "faces_in": int(len(mesh.faces)), "components": q["n_components"],
            "watertight": q["watertight"], "patches": f"{pm.faces.shape[0]}x{pm.faces.shape[1]}",
            "connected_patches": f"{pm.n_connected_patches() / pm.n_patches:.0%}", "fuse_ms": f"{ms:.0f}",
        })
    _print_rows(console, "1. mesh core: sample meshes -> 256x64 patch layout", rows)
    return rows


def _print_rows(console: Console, title: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = Table(title=title)
    for k in rows[0]:
        table.add_column(k)
    for r in rows:
        table.add_row(*[str(v) for v in r.values()])
    console.print(table)


def _dataset(cfg: QuickstartConfig, out: Path, console: Console) -> Path:
    from dreamcs.data.build import BuildConfig, build

    if cfg.dataset is not None:
        console.print(f"2. data: using {cfg.dataset}")
        return Path(cfg.dataset)
    root = out / "meshpref"
    if (root / "items.parquet").exists():
        console.print(f"2. data: reusing {root}")
    else:
        console.print(f"2. data: building a 3D-MeshPref dataset from {', '.join(cfg.sources)}")
        build(BuildConfig(sources=list(cfg.sources), seed=cfg.seed), root, workers=cfg.workers)
    return root


def _reward(cfg: QuickstartConfig, data: Path, out: Path, console: Console) -> tuple[Path, dict[str, Any]]:
    from dreamcs.data import MeshPrefDataset
    from dreamcs.reward import RewardCS, preset
    from dreamcs.reward.evaluate import evaluate
    from dreamcs.reward.train import TrainConfig, train

    run = out / "reward"
    if (run / "model.safetensors").exists():
        console.print(f"3. reward: reusing {run}")
        model = RewardCS.from_pretrained(run)
    else:
        console.print(f"3. reward: training RewardCS ({cfg.reward_preset}) for {cfg.reward_steps} steps")
        tcfg = TrainConfig(
            model=preset(cfg.reward_preset), steps=cfg.reward_steps, batch_size=cfg.reward_batch_size,
            warmup_steps=max(1, cfg.reward_steps // 10), checkpoint_every=max(1, cfg.reward_steps // 4),
            seed=cfg.seed,
        )
        model = train(tcfg, MeshPrefDataset(data, split="train"), run, resume=True)
    test = MeshPrefDataset(data, split="test")
    metrics = evaluate(model.eval(), test, out_dir=run) if len(test) else {}
    return run, metrics


def _generate(cfg: QuickstartConfig, reward_run: Path, out: Path, console: Console) -> list[dict[str, Any]]:
    """Each prompt with and without 3D reward guidance, on the embedded prior (raises
    FileNotFoundError when no prior ships: the tiny random prior would make meaningless shapes)."""
    from dreamcs.config import load_config
    from dreamcs.generate.config import GenerateConfig, resolve_config_path
    from dreamcs.generate.pipeline import GeneratePipeline

    rows = []
    for i, prompt in enumerate(cfg.prompts):
        for guided in (False, True):
            run = out / "generate" / f"p{i}-{'reward' if guided else 'sds'}"
            overrides = [f"steps={cfg.generate_steps}", f"seed={cfg.seed}"]
            gcfg = load_config(GenerateConfig, resolve_config_path(cfg.generate_config), overrides)
            gcfg.prompt = prompt
            gcfg.reward.checkpoint = str(reward_run) if guided else None
            console.print(f"4. generate: {prompt!r} {'with' if guided else 'without'} 3D reward -> {run}")
            result = GeneratePipeline(gcfg, run)(resume=(run / "metrics.jsonl").exists())
            last = result.metrics[-1] if result.metrics else {}
            rows.append({"prompt": prompt, "guided": guided, "run": str(run),
                         **{k: last.get(k) for k in ("loss", "reward")}})
    return rows


def quickstart(cfg: QuickstartConfig) -> Path:
    """Run the demo; returns the path of ``report.html``."""
    console = Console()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    t0 = time.perf_counter()
    sections: dict[str, Any] = {"mesh": _mesh_table(console)}
    data = _dataset(cfg, out, console)
    stats_path = data / "stats.json"
    sections["stats"] = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    reward_run, metrics = _reward(cfg, data, out, console)
    sections["reward_eval"] = metrics
    _print_rows(console, "3. reward: test split", [{k: _fmt(v) for k, v in metrics.items()}] if metrics else [])
    sections["generate"] = []
    if cfg.generate:
        try:
            sections["generate"] = _generate(cfg, reward_run, out, console)
        except (FileNotFoundError, ImportError) as e:
            console.print(f"4. generate: skipped ({e})")
    sections["seconds"] = round(time.perf_counter() - t0, 1)
    report = write_report(out, sections, reward_run)
    console.print(f"done in {sections['seconds']} s: {report}")
    return report


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _html_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _curves_png(reward_run: Path) -> str | None:
    """The reward training loss curves as an inline PNG (base64), or None without metrics."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_jsonl(reward_run / "metrics.jsonl") if "step" in r]
    if not rows:
        return None
    keys = [k for k in ("loss", "loss_mse", "d_cs") if any(k in r for r in rows)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3))
    for ax, k in zip(axes if len(keys) > 1 else [axes], keys, strict=True):
        pts = [(r["step"], r[k]) for r in rows if k in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts])
        ax.set_title(k)
        ax.set_xlabel("step")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def write_report(out: Path, sections: dict[str, Any], reward_run: Path) -> Path:
    """``out/report.html``: one self-contained page (images inlined)."""
    import base64

    parts = ["<html><head><meta charset='utf-8'><title>dreamcs demo</title><style>"
             "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>",
             "<h1>dreamcs demo</h1>", f"<p>Total time: {sections['seconds']} s</p>",
             "<h2>1. Mesh core</h2>", _html_table(sections["mesh"]),
             "<h2>2. 3D-MeshPref dataset</h2>", f"<pre>{html.escape(json.dumps(sections['stats'], indent=2))}</pre>",
             "<h2>3. RewardCS on the test split</h2>",
             _html_table([sections["reward_eval"]] if sections["reward_eval"] else [])]
    curves = _curves_png(reward_run)
    if curves:
        parts.append(f"<h3>Training curves</h3><img src='data:image/png;base64,{curves}'>")
    emb = reward_run / "embeddings.png"
    if emb.exists():
        parts.append(f"<h3>Test embeddings</h3><img src='data:image/png;base64,{base64.b64encode(emb.read_bytes()).decode()}'>")
    parts.append("<h2>4. Generation</h2>")
    rows = sections["generate"]
    parts.append(_html_table([{k: v for k, v in r.items() if k != "run"} for r in rows]) if rows else "<p>not run</p>")
    for r in rows:
        png = Path(r["run"]) / "turntable.png"
        if png.exists():
            parts.append(f"<p>{html.escape(r['prompt'])} ({'with' if r['guided'] else 'without'} RewardCS)</p>"
                         f"<img src='data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}'>")
    parts.append("</body></html>")
    return atomic_write_text(out / "report.html", "\n".join(parts))
