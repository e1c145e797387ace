"""`dreamcs mesh` commands: prepare (files to patched .npz) and inspect (quality figures)."""

from __future__ import annotations

from pathlib import Path

import typer

mesh_app = typer.Typer(help="The mesh core: prepare meshes in the patch layout, inspect their quality.", no_args_is_help=True)


@mesh_app.command("prepare")
def prepare(
    inputs: list[Path] = typer.Argument(..., help="Mesh files and/or folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: one .npz per mesh plus report.jsonl."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes; 1 runs in this process."),
    n_patches: int = typer.Option(256, "--n-patches", min=1, help="Patches per mesh."),
    faces_per_patch: int = typer.Option(64, "--faces-per-patch", min=1, help="Faces per patch."),
    up: str = typer.Option("y", "--up", help="Up axis of the inputs: y (default) or z (rotated to y-up)."),
) -> None:
    """Load, normalise, simplify and fuse every mesh; resumes from OUT/report.jsonl."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from dreamcs.mesh.prepare import REPORT_NAME, PrepareConfig, prepare_many

    if up not in ("y", "z"):
        raise typer.BadParameter("must be 'y' or 'z'", param_hint="--up")
    console = Console(stderr=True)
    cfg = PrepareConfig(n_patches=n_patches, faces_per_patch=faces_per_patch, up=up)  # type: ignore[arg-type]
    counts = {"ok": 0, "error": 0}
    with Progress(
        TextColumn("[bold]mesh prepare"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.description}"), console=console, transient=False,
    ) as progress:
        task = progress.add_task("", total=None)

        def on_start(n_total: int, n_todo: int) -> None:
            if n_total - n_todo:
                console.print(f"resuming: {n_total - n_todo} of {n_total} inputs already prepared")
            progress.update(task, total=n_todo)

        def on_result(rec: dict) -> None:
            counts[rec["status"]] = counts.get(rec["status"], 0) + 1
            if rec["status"] != "ok":
                progress.console.print(f"[red]failed[/red] {rec['error']}")
            progress.update(task, advance=1, description=Path(rec["input"]).name)

        records = prepare_many(inputs, out, cfg, workers=workers, on_start=on_start, on_result=on_result)
    skipped = [r for r in records if r["status"] == "skipped"]
    records = [r for r in records if r["status"] != "skipped"]
    for r in skipped:
        console.print(f"[yellow]skipped[/yellow] {r['input']}: {r['reason']}")
    resumed = sum(1 for r in records if r.get("resumed"))
    failed = sum(1 for r in records if r["status"] != "ok")
    console.print(
        f"{len(records)} inputs: {len(records) - failed} ok ({resumed} resumed), {failed} failed, "
        f"{len(skipped)} skipped (not a mesh type); report: {out / REPORT_NAME}"
    )
    if not records:
        console.print("[yellow]no mesh files found in the inputs[/yellow]")
        raise typer.Exit(1)


@mesh_app.command("inspect")
def inspect(
    file: Path = typer.Argument(..., help="A mesh file (obj, ply, off, stl, glb, gltf)."),
    max_faces: int = typer.Option(16384, "--max-faces", min=1, help="Face limit of the simplify step shown."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
) -> None:
    """Print the quality figures and face counts of FILE."""
    import json

    from rich.console import Console
    from rich.table import Table

    from dreamcs.mesh import MeshError, load_mesh, normalize, quality, simplify

    console = Console()
    try:
        mesh = load_mesh(file)
        norm = normalize(mesh)
    except MeshError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    q = quality(mesh)
    q["faces_after_simplify"] = len(simplify(norm, max_faces=max_faces).faces)
    q["area_normalized"] = float(norm.area)
    if as_json:
        typer.echo(json.dumps({"file": str(file), **q}))
        return
    table = Table(title=f"{file.name}: {len(mesh.faces)} faces, {len(mesh.vertices)} vertices")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in q.items():
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, list):
            text = ", ".join(f"{x:.4g}" for x in value)
        else:
            text = str(value)
        table.add_row(key, text)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the top-level app."""
    app.add_typer(mesh_app, name="mesh")
