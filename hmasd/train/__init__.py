"""Training: configs and presets, the synchronous HMASD/MAPPO loop on the native engine, evaluation."""

from hmasd.train.config import ALGOS, PRESETS, TrainConfig, preset

__all__ = ["ALGOS", "PRESETS", "TrainConfig", "preset", "run"]


def run(config: TrainConfig, **kwargs):
    """Trains with ``config``; see :func:`hmasd.train.loop.run`."""
    from hmasd.train.loop import run as _run

    return _run(config, **kwargs)
