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


def _register_gymnasium_ids() -> None:
    """``hmasd/<env>-v0`` for ``gymnasium.make_vec`` (a vector entry point only: a multi-agent env has no single-agent
    ``gymnasium.make`` form). The entry point is a string, so gymnasium.vector is imported only when one is made."""
    from gymnasium.envs.registration import register, registry

    for name in registered_envs():
        env_id = f"hmasd/{name}-v0"
        if env_id not in registry:
            register(id=env_id, vector_entry_point="hmasd.envs.gym_vector:make_vector_env", kwargs={"env": name})


_register_gymnasium_ids()
