"""Plain NumPy reference implementations of the native envs and their RNG, written from docs/envs.md for the tests."""

from hmasd.envs.reference.alice_and_bob import AliceAndBobRef
from hmasd.envs.reference.philox import (
    KNOWN_ANSWERS,
    EnvRng,
    bernoulli,
    philox4x32_10,
    philox4x32_10_np,
    uniform_float,
    uniform_int,
)
from hmasd.envs.reference.stag_hunt import StagHuntRef
from hmasd.envs.reference.uav_coverage import UavCoverageRef
from hmasd.envs.reference.vec import REFERENCE_ENVS, ReferenceVecEnv

__all__ = [
    "KNOWN_ANSWERS",
    "REFERENCE_ENVS",
    "AliceAndBobRef",
    "EnvRng",
    "ReferenceVecEnv",
    "StagHuntRef",
    "UavCoverageRef",
    "bernoulli",
    "philox4x32_10",
    "philox4x32_10_np",
    "uniform_float",
    "uniform_int",
]
