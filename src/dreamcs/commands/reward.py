"""`dreamcs reward` commands: train, eval, score, pretrain, ablate, export, theory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

reward_app = typer.Typer(help="RewardCS: train, evaluate and use the geometry-aware reward model.", no_args_is_help=True)

OVERRIDES_HELP = "Config overrides as key=value (e.g. steps=500 lambda_cs=0 model.depth=4)."


def _fail(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/red] {msg}")
    raise typer.Exit(2)


def _dataset(root: Path, split: str) -> Any:
    """The MeshPref dataset reader (owned by the data stage), imported when used."""
    try:
        from dreamcs.data import MeshPrefDataset
    except ImportError as e:
        _fail(f"dreamcs.data.MeshPrefDataset is not available ({e})")
    if not root.exists():
        _fail(f"{root}: dataset folder not found")
    return MeshPrefDataset(root, split=split)


def _datasets(roots: list[Path], split: str) -> Any:
    """One dataset, or several read as one (``ConcatMeshPref``: e.g. the offline build and a harvest's)."""
    from dreamcs.data import ConcatMeshPref

    parts = [_dataset(r, split) for r in roots]
    return parts[0] if len(parts) == 1 else ConcatMeshPref(parts)


def _preset_overrides(name: str | None, training: bool = False) -> list[str]:
    """The model preset's fields (and, for training, its TRAIN_PRESETS defaults) as overrides."""
    from dreamcs.reward.config import PRESETS, TRAIN_PRESETS

    if name is None:
        return []
    if name not in PRESETS:
        _fail(f"--preset {name!r}: known presets are {', '.join(PRESETS)}")
    train_fields = [f"{k}={v}" for k, v in TRAIN_PRESETS.get(name, {}).items()] if training else []
    return [f"model.{k}={v}" for k, v in PRESETS[name].items()] + train_fields


def _load(cls: type, config: Path | None, overrides: list[str]) -> Any:
    from dreamcs.config import ConfigError, load_config

    try:
        return load_config(cls, config, overrides)
    except (ConfigError, ValueError) as e:
        _fail(str(e))


@reward_app.command("train")
def train(
    data: list[Path] = typer.Option(..., "--data", help="A MeshPref dataset folder; repeat it to train on "
                                    "several as one (e.g. the offline build and an SDS harvest's build)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (config, metrics, checkpoints, model)."),
    init: Path = typer.Option(None, "--init", help="A `reward pretrain` run to start the mesh encoder from."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT's latest checkpoint."),
    preset: str = typer.Option(None, "--preset", help="Model size: tiny, cpu (with a ~25 min 2-core CPU recipe), "
                               "small (default) or base."),
    config: Path = typer.Option(None, "--config", help="A YAML TrainConfig file."),
    split: str = typer.Option("train", "--split", help="Dataset split to train on."),
    seed: int = typer.Option(None, "--seed", help="Shortcut for seed=N."),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Train RewardCS on a dataset's preferred / dispreferred items."""
    from dreamcs.reward.train import TrainConfig, init_distributed
    from dreamcs.reward.train import train as run_train

    extra = _preset_overrides(preset, training=True) + list(overrides or [])
    if init is not None:
        extra.append(f"init={init}")
    if seed is not None:
        extra.append(f"seed={seed}")
    cfg = _load(TrainConfig, config, extra)
    init_distributed()
    try:
        run_train(cfg, _datasets(data, split), out, resume=resume)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"model written to {out}")


@reward_app.command("eval")
def evaluate(
    ckpt: Path = typer.Option(Path("embedded"), "--ckpt", help="A run folder, RewardCS model folder, or `embedded` "
                              "(the shipped one, the default)."),
    data: Path = typer.Option(..., "--data", help="A MeshPref dataset folder."),
    split: str = typer.Option("test", "--split"),
    out: Path = typer.Option(None, "--out", "-o", help="Where eval.json and embeddings.png go (default CKPT/eval_SPLIT)."),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Preference accuracy, ROC-AUC, Spearman, D_CS and an embedding plot on one split."""
    from rich.console import Console
    from rich.table import Table

    from dreamcs.reward.evaluate import evaluate as run_eval
    from dreamcs.reward.model import RewardCS

    model = _model(ckpt, device)
    assert isinstance(model, RewardCS)
    out = out or (Path(f"eval_embedded_{split}") if str(ckpt) == "embedded" else ckpt / f"eval_{split}")
    try:
        metrics = run_eval(model, _dataset(data, split), out)
    except ValueError as e:
        _fail(str(e))
    table = Table(title=f"RewardCS on {data.name} [{split}]")
    table.add_column("metric")
    table.add_column("value")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    Console().print(table)
    typer.echo(f"wrote {out / 'eval.json'} and {out / 'embeddings.png'}")


def _model(ckpt: Path, device: str) -> Any:
    from dreamcs.reward.model import RewardCS

    try:
        return RewardCS.from_pretrained(ckpt, device=device)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))


@reward_app.command("score")
def score(
    mesh: Path = typer.Argument(..., help="A mesh file (obj, ply, glb, ...) or a prepared .npz."),
    prompt: str = typer.Argument(..., help="The text prompt."),
    ckpt: Path = typer.Option(Path("embedded"), "--ckpt", help="A run folder, RewardCS model folder, or `embedded` "
                              "(the shipped one, the default)."),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Print the reward of MESH for PROMPT."""
    from dreamcs.mesh import MeshError

    if not mesh.is_file():
        _fail(f"{mesh}: mesh file not found")
    model = _model(ckpt, device)
    try:
        if mesh.suffix.lower() == ".npz":
            from dreamcs.mesh import PatchedMesh

            r = model.score(PatchedMesh.load(mesh), prompt)
        else:
            r = model.score(mesh, prompt)
    except (MeshError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"{r:.6f}")


@reward_app.command("pretrain")
def pretrain(
    meshes: Path = typer.Option(..., "--meshes", help="A folder of meshes / prepared .npz, or a MeshPref dataset."),
    out: Path = typer.Option(..., "--out", "-o"),
    split: str = typer.Option("train", "--split", help="For a dataset folder: the split(s) whose meshes to use "
                              "(comma-separated, or all); labelled or not."),
    resume: bool = typer.Option(False, "--resume"),
    preset: str = typer.Option(None, "--preset", help="Model size: tiny, small (default) or base."),
    config: Path = typer.Option(None, "--config", help="A YAML PretrainConfig file."),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """MeshMAE masked-patch pre-training of the mesh encoder (mask ratio 0.5)."""
    from dreamcs.reward.pretrain import DatasetMeshes, MeshFolderDataset, PretrainConfig
    from dreamcs.reward.pretrain import pretrain as run_pretrain

    cfg = _load(PretrainConfig, config, _preset_overrides(preset) + list(overrides or []))
    try:
        if (meshes / "items.parquet").is_file():
            data: Any = DatasetMeshes(meshes, tuple(s.strip() for s in split.split(",") if s.strip()))
        else:
            data = MeshFolderDataset(meshes, cfg.model.faces_per_patch)
        typer.echo(f"pre-training on {len(data)} meshes from {meshes}")
        run_pretrain(cfg, data, out, resume=resume)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"pre-trained encoder written to {out / 'model.safetensors'} (use: reward train --init {out})")


@reward_app.command("ablate")
def ablate(
    data: list[Path] = typer.Option(..., "--data", help="The MeshPref dataset to train on; repeat it to train on "
                                    "several as one (e.g. the offline and offline-realism builds)."),
    val: Path = typer.Option(..., "--val", help="The dataset to evaluate on (e.g. `dreamcs data validation`'s)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the runs and ablation.md/.csv/.json."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Comma-separated seeds."),
    losses: str = typer.Option(",".join(("cs", "mse", "bradley_terry", "dro", "mmd")), "--losses",
                               help="Comma-separated loss types."),
    preset: str = typer.Option(None, "--preset", help="Model size: tiny, small (default) or base."),
    config: Path = typer.Option(None, "--config", help="A YAML TrainConfig file (loss_type and seed are set per run)."),
    split: str = typer.Option("train", "--split", help="Split of --data to train on."),
    val_split: str = typer.Option(None, "--val-split", help="Split of --val to evaluate on (default: val when "
                                  "--val is --data, else all)."),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Train every objective on the same data and seeds; compare them on a validation set."""
    from dreamcs.reward.ablate import ablate as run_ablate
    from dreamcs.reward.train import TrainConfig

    cfg = _load(TrainConfig, config, _preset_overrides(preset, training=True) + ["progress=false"] + list(overrides or []))
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        _fail(f"--seeds {seeds!r}: expected comma-separated integers")
    vsplit = val_split or ("val" if val.resolve() in {d.resolve() for d in data} else "all")
    train_data, val_data = _datasets(data, split), _dataset(val, vsplit)
    try:
        res = run_ablate(cfg, train_data, val_data, out, [t.strip() for t in losses.split(",") if t.strip()],
                         seed_list, log=typer.echo)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo((out / "ablation.md").read_text(encoding="utf-8"))
    typer.echo(f"wrote {out / 'ablation.md'}, ablation.csv, ablation.json ({len(res['runs'])} runs)")


@reward_app.command("export")
def export(
    ckpt: Path = typer.Option(..., "--ckpt", help="A reward run or RewardCS folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Target folder; src/dreamcs/assets/reward ships it "
                             "as `embedded`."),
    dtype: str = typer.Option("float16", "--dtype", help="float16 (default) or float32."),
) -> None:
    """Package a trained model for shipping: weights without the text encoder, config, model card."""
    from dreamcs.reward.export import export_model

    try:
        info = export_model(ckpt, out, dtype)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"wrote {out}: {info['params']:,} parameters, {info['bytes']:,} bytes in {info['dtype']}")


@reward_app.command("theory")
def theory(
    out: Path = typer.Option(Path("theory"), "--out", "-o", help="Folder for theory.json and theory.png."),
    trials: int = typer.Option(30, "--trials", min=1),
    dim: int = typer.Option(2, "--dim", min=1),
    n_over_m: float = typer.Option(1.0, "--n-over-m", help="n / m, the dispreferred-to-preferred size ratio."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Theorem 1 numerically: the unpaired CS estimate's gap shrinks as O(1/sqrt(m) + 1/sqrt(n))."""
    from dreamcs.reward.theory import TheoryConfig, plot_theory, run_theory
    from dreamcs.utils import atomic_write_text

    res = run_theory(TheoryConfig(trials=trials, dim=dim, n_over_m=n_over_m, seed=seed))
    for r in res["rows"]:
        typer.echo(f"m={r['m']:5d} n={r['n']:5d}  |unpaired - population| = {r['unpaired_gap']:.5f}  "
                   f"|paired - population| = {r['paired_gap']:.5f}")
    typer.echo(f"population D_CS = {res['population_d_cs']:.5f}")
    typer.echo(f"fitted log-log slope (unpaired gap vs m): {res['slope_unpaired']:.3f} (about -0.5 expected)")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "theory.json", json.dumps(res, indent=2))
    typer.echo(f"plot: {plot_theory(res, out / 'theory.png')}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the top-level app."""
    app.add_typer(reward_app, name="reward")
