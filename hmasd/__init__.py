"""hmasd: Hierarchical Multi-Agent Skill Discovery on native batched environments."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hmasd")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["__version__"]
