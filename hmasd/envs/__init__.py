"""Batched multi-agent environments in native code; importable and usable without torch."""

from hmasd.envs.actions import random_actions
from hmasd.envs.registry import OptionInfo, default_options, make, option_names, option_table, register, registered_envs
from hmasd.envs.vec_env import VecEnv

__all__ = [
    "OptionInfo",
    "VecEnv",
    "default_options",
    "make",
    "option_names",
    "option_table",
    "random_actions",
    "register",
    "registered_envs",
]
