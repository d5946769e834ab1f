"""Benchmark-session setup: adds CPU model, cores, load and library versions to the benchmark JSON's machine_info.

The benchmarks run against the installed hmasd (``pip install ".[train,test]"``, as the README installs it; an editable
install works too). benchmarks/ is not a package, so pytest puts benchmarks/ itself first on sys.path (the suites
import their helpers as ``_common``), never the repository root, whose source tree ``hmasd/`` has no compiled
``_native`` and would shadow the installed package. ``python -m pytest`` run from the repository root still puts the
root first; `pytest_configure` stops such a run with the reason instead of failing at the first native call.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from _common import cpu_model


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


def hmasd_location() -> tuple[str, str]:
    """(the directory hmasd is imported from, the import error of its compiled ``_native`` or "")."""
    spec = importlib.util.find_spec("hmasd")
    location = os.path.dirname(spec.origin) if spec is not None and spec.origin else "nowhere (not installed)"
    try:
        from hmasd import _native  # noqa: F401
    except ImportError as exc:
        return location, str(exc) or type(exc).__name__
    return location, ""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-smoke", action="store_true",
                     help="one timed round per benchmark.pedantic call (its warm-up rounds kept): a check that every "
                          "benchmark runs and report.py renders its results (.ci/bench_smoke), not a measurement")


def pytest_configure(config: pytest.Config) -> None:
    """Stops the run with the reason when hmasd comes from the uncompiled source tree (or from elsewhere than
    ``$HMASD_EXPECTED_PACKAGE_DIR``, which .ci/bench_smoke sets to the installed package's directory)."""
    location, error = hmasd_location()
    if error:
        raise pytest.UsageError(
            f"hmasd is imported from {location} without its compiled extension ({error}). The benchmarks run against "
            "the installed package: install it (pip install \".[train,test]\") and run `pytest benchmarks/...` or "
            "`python benchmarks/report.py`; `python -m pytest` from the repository root puts the root, and its "
            "uncompiled hmasd/, first on sys.path.")
    expected = os.environ.get("HMASD_EXPECTED_PACKAGE_DIR")
    if expected and os.path.realpath(location) != os.path.realpath(expected):
        raise pytest.UsageError(f"hmasd is imported from {location}, not from the installed package at {expected} "
                                "(HMASD_EXPECTED_PACKAGE_DIR): something put another copy first on sys.path")


def pytest_report_header(config: pytest.Config) -> str:
    return f"hmasd: {hmasd_location()[0]}"


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
    machine_info["hmasd_path"] = hmasd_location()[0]
    machine_info["bench_smoke"] = bool(config.getoption("--bench-smoke", default=False))
    machine_info["hmasd_build"] = {key: (list(v) if isinstance(v, tuple) else v)
                                   for key, v in _native.build_info().items()}


@pytest.fixture
def benchmark(benchmark: Any, request: pytest.FixtureRequest) -> Any:
    """pytest-benchmark's fixture; with ``--bench-smoke`` every ``benchmark.pedantic`` call times one round."""
    if request.config.getoption("--bench-smoke", default=False):
        pedantic = benchmark.pedantic

        def one_round(*args: Any, **kwargs: Any) -> Any:
            return pedantic(*args, **{**kwargs, "rounds": 1})

        benchmark.pedantic = one_round
    return benchmark


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread for the test: deterministic runs, and on this 2-core machine a core busy with the
    native env (or another process) would stall every parallel torch op."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
