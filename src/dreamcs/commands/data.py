"""`dreamcs data` commands: build, harvest, merge, stats, calibrate, review, procedural-sheet."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(help="3D-MeshPref: build, inspect and calibrate unpaired mesh preference datasets.", no_args_is_help=True)


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(2)


@data_app.command("build")
def build_cmd(
    out: Path = typer.Option(..., "--out", help="Dataset folder to write (re-run the same command to resume)."),
    source: list[str] = typer.Option([], "--source", help="cap3d:MESH_DIR:CAPTIONS.csv | manifest:FILE.jsonl | run:RUN_DIR | harvest:DIR | procedural:N[:SEED] | embedded (repeatable)."),
    preset: str | None = typer.Option(None, "--preset", help="'embedded': the small offline set shipped with dreamcs; 'offline': ~5,400 procedural and licensed real items with graded defects."),
    scorer: str | None = typer.Option(None, "--scorer", help="geometric (offline heuristic, the default) or llm."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes."),
    shard: str | None = typer.Option(None, "--shard", help="i/n: build only this part (default 0/1); combine with `dreamcs data merge`."),
    llm_url: str | None = typer.Option(None, "--llm-url", help="OpenAI-compatible endpoint (key from DREAMCS_LLM_API_KEY)."),
    llm_model: str | None = typer.Option(None, "--llm-model", help="Model name sent to the endpoint."),
    config: Path | None = typer.Option(None, "--config", help="YAML with BuildConfig settings."),
    seed: int | None = typer.Option(None, "--seed", help="Seeds the synthetic defects (default 0)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Retry items that failed in an earlier run."),
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides, e.g. preferred_min=4.5"),
) -> None:
    """Prepare, score, label and store meshes as a MeshPref dataset."""
    from dreamcs.config import ConfigError, load_config
    from dreamcs.data.build import BuildConfig, build
    from dreamcs.data.sources import SourceError

    ov = list(overrides or [])
    # only the options typed on the command line override the --config file (None = not typed)
    ov += [f"{k}={v}" for k, v in (("scorer", scorer), ("shard", shard), ("seed", seed)) if v is not None]
    if llm_url:
        ov.append(f"llm.url={llm_url}")
    if llm_model:
        ov.append(f"llm.model={llm_model}")
    try:
        cfg = load_config(BuildConfig, config, ov)
    except ConfigError as e:
        _fail(str(e))
    if preset is not None:
        from dreamcs.data.presets import PRESETS, preset_sources

        if preset not in PRESETS:
            _fail(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        source = [*source, *preset_sources(preset)]
    if source:
        cfg.sources = list(source)
    try:
        st = build(cfg, out, workers=workers, retry_failed=retry_failed)
    except (SourceError, ValueError, KeyError) as e:
        _fail(str(e).strip("'\""))
    typer.echo(
        f"{out}: {st['items']} items ({st['preferred']} preferred, {st['dispreferred']} dispreferred, "
        f"{st['middle_left_out']} left out), {st['failures']} failures; {st['computed_now']} computed in {st['build_seconds']} s"
    )


@data_app.command("harvest")
def harvest_cmd(
    out: Path = typer.Option(..., "--out", help="Harvest folder (re-run the same command to resume)."),
    prompts: Path | None = typer.Option(None, "--prompts", help="JSON list or one prompt per line (default: embedded captions + categories)."),
    preset: str = typer.Option("paper", "--preset", help="paper (steps 10,40,80,150 of dmtet-embedded) or fast (2-core CPU)."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds, e.g. 0,1,2."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes, one generation each."),
    shard: str = typer.Option("0/1", "--shard", help="i/n: run only this share of the prompt x seed jobs."),
    config: Path | None = typer.Option(None, "--config", help="YAML with HarvestConfig settings."),
    overrides: list[str] | None = typer.Argument(None, help="HarvestConfig key=value, e.g. procedural=200 (procedural objects as extra prompts) chamfer_points=1024"),
) -> None:
    """Generate prompts x seeds with the offline SDS generator; keep meshes at early to final steps."""
    from dreamcs.config import ConfigError, load_config
    from dreamcs.data.harvest import PRESETS, HarvestConfig, run_harvest
    from dreamcs.evaluate.prompts import PromptFileError
    from dreamcs.evaluate.study import parse_seeds

    if preset not in PRESETS:
        _fail(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    try:
        ov = [*PRESETS[preset], f"seeds=[{','.join(map(str, parse_seeds(seeds)))}]", f"workers={workers}", f"shard={shard}"]
        if prompts is not None:
            ov.append(f"prompts={prompts}")
        cfg = load_config(HarvestConfig, config, ov + list(overrides or []))
        counts = run_harvest(out, cfg, log=typer.echo)
    except (ConfigError, PromptFileError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"{out / 'harvest.jsonl'}: {counts['meshes']} meshes; runs done {counts['done']}, "
               f"skipped {counts['skipped']} (finished before), failed {counts['failed']}; {counts['cpu_seconds']:.0f} CPU s")
    if counts["failed"]:
        typer.echo(f"failures: {out / 'failures.jsonl'} (run the same command again to retry)")
        raise typer.Exit(1)


@data_app.command("merge")
def merge_cmd(
    parts: list[Path] = typer.Argument(..., help="Shard dataset folders built with --shard i/n."),
    out: Path = typer.Option(..., "--out", help="Merged dataset folder."),
) -> None:
    """Merge shard builds into one dataset, equal to an unsharded build."""
    from dreamcs.data.build import merge

    try:
        st = merge([str(p) for p in parts], out)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    typer.echo(f"{out}: {st['items']} items from {len(parts)} parts")


@data_app.command("stats")
def stats_cmd(dataset: Path = typer.Argument(..., help="Dataset folder.")) -> None:
    """Class balance and counts per source and split."""
    from rich.console import Console
    from rich.table import Table

    from dreamcs.data.store import read_table, stats

    try:
        rows = read_table(dataset)
    except FileNotFoundError as e:
        _fail(str(e))
    fails = sum(1 for line in open(dataset / "failures.jsonl", encoding="utf-8") if line.strip()) if (dataset / "failures.jsonl").exists() else 0
    st = stats(rows, fails)
    t = Table(title=f"{dataset}: {st['items']} items, {st['objects']} objects, {st['failures']} failures")
    for h in ("group", "items", "preferred", "dispreferred", "left out", "preferred share", "mean overall"):
        t.add_column(h)

    def add(name, b):
        share = "-" if b["preferred_share"] is None else f"{100 * b['preferred_share']:.0f}% / {100 - 100 * b['preferred_share']:.0f}%"
        t.add_row(name, str(b["items"]), str(b["preferred"]), str(b["dispreferred"]), str(b["middle_left_out"]), share, str(b["mean_overall"]))

    add("all", st)
    for s, b in st["per_source"].items():
        add(f"source {s}", b)
    for s, b in st["per_split"].items():
        add(f"split {s}", b)
    Console(width=140).print(t)
    typer.echo("(the paper's 3D-MeshPref balance: 47% preferred / 53% dispreferred)")


@data_app.command("calibrate")
def calibrate_cmd(
    dataset: Path = typer.Argument(..., help="Dataset folder."),
    overrides: Path | None = typer.Option(None, "--overrides", help="CSV: id,alignment,realism,fidelity or id,overall (header row)."),
    fit: str | None = typer.Option(None, "--fit", help="isotonic | linear: fit machine -> human per dimension on the reviews, apply it to the unreviewed items (stop `data review` first)."),
) -> None:
    """Apply human scores (--overrides) and/or a correction fitted on the reviews (--fit); relabel."""
    from dreamcs.data.calibrate import CalibrationError, calibrate

    if overrides is None and fit is None:
        _fail("give --overrides FILE.csv and/or --fit isotonic|linear")
    if fit is not None and fit not in ("isotonic", "linear"):
        _fail(f"unknown fit {fit!r}; known: isotonic, linear")
    if overrides is not None:
        try:
            n, st = calibrate(dataset, overrides)
        except (CalibrationError, FileNotFoundError) as e:
            _fail(str(e))
        typer.echo(f"{dataset}: {n} items rescored from {overrides.name}; now {st['preferred']} preferred, {st['dispreferred']} dispreferred")
    if fit is not None:
        from dreamcs.data.review.records import fit_and_apply

        try:
            res = fit_and_apply(dataset, fit)
        except (ValueError, FileNotFoundError) as e:
            _fail(str(e))
        _print_agreement(res["agreement"], f"{dataset}: agreement on the reviewed items")
        st = res["stats"]
        typer.echo(f"fitted: {', '.join(res['fitted'])} (other dimensions kept as scored)")
        typer.echo(f"{dataset}: {fit} correction applied to {res['changed']} unreviewed items (score_source=calibrated); "
                   f"now {st['preferred']} preferred, {st['dispreferred']} dispreferred, {st['middle_left_out']} left out")


def _print_agreement(ag: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    def f(v):
        return "-" if v is None else f"{v:.3f}"

    t = Table(title=title)
    for h in ("dimension", "n", "Spearman (machine vs human)", "MAE", "pairs", "Spearman (reviewers)", "MAE (reviewers)"):
        t.add_column(h)
    for d, m in ag["machine_vs_human"].items():
        b = ag["between_reviewers"][d]
        t.add_row(d, str(m["n"]), f(m["spearman"]), f(m["mae"]), str(b["n"]), f(b["spearman"]), f(b["mae"]))
    Console(width=140).print(t)
    typer.echo("reviewers: " + (", ".join(f"{k} ({v})" for k, v in ag["reviewers"].items()) or "none"))


@data_app.command("review")
def review_cmd(
    dataset: Path = typer.Argument(..., help="Dataset folder."),
    port: int = typer.Option(8765, "--port", help="Port of the local web app (on 127.0.0.1)."),
    reviewer: str = typer.Option("reviewer", "--reviewer", help="Your name: kept with every answer."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a browser tab."),
    seed: int = typer.Option(0, "--seed", help="Seeds the stratified review order."),
    strata: str = typer.Option("label,source,score_bin", "--strata", help="Stratify the review order by these (label, source, score_bin, split; label and score bin of the machine's scores)."),
    out: Path | None = typer.Option(None, "--out", help="Instead of the app: write a static HTML page with thumbnails."),
    limit: int = typer.Option(0, "--limit", help="--out: only the first N items (0: all)."),
    views: int = typer.Option(4, "--views", help="--out: thumbnails per item."),
) -> None:
    """Review a dataset in a local web app (3D view, scores, answers saved to calibration.jsonl)."""
    if out is not None:
        from dreamcs.data.calibrate import review

        try:
            n = review(dataset, out, limit=limit or None, n_views=views)
        except FileNotFoundError as e:
            _fail(str(e))
        typer.echo(f"{out}: {n} items")
        return
    from dreamcs.data.review.server import ReviewApp, make_server

    try:
        app = ReviewApp(dataset, reviewer=reviewer, seed=seed, by=tuple(s.strip() for s in strata.split(",") if s.strip()))
        httpd = make_server(app, port)
    except (FileNotFoundError, ValueError, OSError) as e:
        _fail(str(e))
    from urllib.parse import quote

    url = f"http://127.0.0.1:{httpd.server_address[1]}/?reviewer={quote(reviewer)}"
    st = app.state()
    typer.echo(f"{dataset}: {st['items']} items, {st['answered']} answered by {reviewer}; serving {url} (Ctrl-C to stop)")
    if not no_browser:
        import webbrowser

        webbrowser.open(url)
    import signal

    # Ctrl-C must stop it even when started where SIGINT is ignored (a script's background job, a
    # test runner's child): Python installs no KeyboardInterrupt handler then
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        typer.echo("stopped; answers are saved in " + str(dataset / "calibration.jsonl"))
    finally:
        httpd.server_close()
        app.close()


@data_app.command("procedural-sheet")
def procedural_sheet_cmd(
    out: Path = typer.Option(..., "--out", help="PNG to write."),
    seeds: int = typer.Option(6, "--seeds", min=1, help="Seeds 0..N-1 per category (columns)."),
    category: list[str] = typer.Option([], "--category", help="Only these categories (repeatable; default all)."),
    resolution: int = typer.Option(160, "--resolution", min=32, help="Pixels per cell."),
) -> None:
    """A labelled grid of procedural objects: one row per category, one column per seed."""
    from dreamcs.data.procedural import CATEGORIES
    from dreamcs.data.procedural.sheet import contact_sheet

    unknown = [c for c in category if c not in CATEGORIES]
    if unknown:
        _fail(f"unknown procedural categories {unknown}; known: {', '.join(CATEGORIES)}")
    contact_sheet(out, tuple(category) or None, tuple(range(seeds)), resolution)
    typer.echo(f"{out}: {len(category) or len(CATEGORIES)} categories x {seeds} seeds")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the top-level app."""
    app.add_typer(data_app, name="data")


from dreamcs.commands.data_eval import add_commands as _add_eval_commands  # noqa: E402

_add_eval_commands(data_app)  # validation, teacher-eval
