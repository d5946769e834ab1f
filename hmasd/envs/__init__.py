"""Batched multi-agent environments in native code; importable and usable without torch."""

from hmasd.envs.registry import default_options, make, option_names, register, registered_envs
from hmasd.envs.vec_env import VecEnv

__all__ = ["VecEnv", "default_options", "make", "option_names", "register", "registered_envs"]
