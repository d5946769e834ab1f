"""Benchmark-session setup: adds CPU model, cores, load and library versions to the benchmark JSON's machine_info."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or "unknown" where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware"):
                    return value.strip()
    except OSError:
        pass
    return "unknown"


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_LOAD_AT_START: list[float] = []


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the OS does not report them)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def pytest_sessionstart(session: pytest.Session) -> None:
    _LOAD_AT_START[:] = load_average()


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    from hmasd import _native

    machine_info["cpu_model"] = cpu_model()
    machine_info["usable_cores"] = usable_cores()
    machine_info["logical_cpus"] = os.cpu_count()
    machine_info["load_average_at_start"] = list(_LOAD_AT_START)
    machine_info["numpy_version"] = np.__version__
    machine_info["hmasd_build"] = {key: (list(v) if isinstance(v, tuple) else v)
                                   for key, v in _native.build_info().items()}


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread for the test: deterministic runs, and on this 2-core machine a core busy with the
    native env (or another process) would stall every parallel torch op."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
