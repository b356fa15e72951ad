"""One module per model family, the registry that builds them from `config.model`, and
the multi-scale model."""
