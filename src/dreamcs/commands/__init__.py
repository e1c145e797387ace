"""CLI command groups, one module per stage. Each module has ``register(app)`` and imports its stage
inside the command functions, so that ``dreamcs --help`` stays fast."""
