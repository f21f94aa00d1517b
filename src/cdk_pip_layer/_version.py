"""The one place the version of cdk-pip-layer is written (pyproject.toml reads it from here)."""

__version__ = "0.1.0"
