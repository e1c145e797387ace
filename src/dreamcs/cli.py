"""The ``dreamcs`` command line: parses arguments and calls the stages, nothing more."""

from __future__ import annotations

import typer

from dreamcs.commands import data, evaluate, generate, mesh, prior, quickstart, reward

app = typer.Typer(
    name="dreamcs",
    help="Geometry-aware text-to-3D generation with unpaired 3D reward supervision (DreamCS).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

for _group in (mesh, data, reward, generate, evaluate, prior, quickstart):
    _group.register(app)


@app.callback()
def _main() -> None:
    """dreamcs: 3D-MeshPref data, the RewardCS reward model, and DreamCS generation."""


if __name__ == "__main__":
    app()
