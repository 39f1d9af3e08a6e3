"""Command-line interface (``rsu``): one module per command family, registered in :mod:`rsu.cli.main`."""
