"""Training: configs and presets, the synchronous HMASD/MAPPO loop on the native engine, evaluation."""

from hmasd.train.config import ALGOS, PRESETS, TrainConfig, preset

__all__ = ["ALGOS", "PRESETS", "TrainConfig", "preset"]
