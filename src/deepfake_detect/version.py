"""The library's version, in one place: a leaf module (it imports nothing), so every module that
writes the version (configs, cards, exported graphs, the graph cache's key) reads it from here
without importing the package's ``__init__``. ``deepfake_detect.__version__`` re-exports it, and
``pyproject.toml`` reads it from here."""

__all__ = ["__version__"]

__version__ = "0.2.0"
