"""Checkpoints that resume a run exactly (networks, optimisers, value norms, RNG, env and engine state, counters),
written atomically, and loaded with errors that name what does not match."""

from __future__ import annotations

import copy
import errno
import logging
import os
from pathlib import Path
from typing import Any

import torch

try:  # POSIX: a writer holds a lock on its temporary file, so that a cleanup never removes a write in progress
    import fcntl
except ImportError:  # Windows: an open file cannot be removed anyway
    fcntl = None

import hmasd
from hmasd.train.config import TrainConfig
from hmasd.train.loop import follow_curriculum

log = logging.getLogger("hmasd.train")
FORMAT = "hmasd-checkpoint-v1"
SPEC_FIELDS = ("name", "num_agents", "obs_dim", "state_dim", "num_actions")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the run it is loaded into."""


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (full disk, read-only folder, lost permissions): ``str()`` names the
    file and the cause, ``errno`` is the cause's, ``filename`` the checkpoint's."""

    @classmethod
    def of(cls, path: str | os.PathLike, cause: OSError) -> CheckpointWriteError:
        return cls(cause.errno, f"cannot write checkpoint {path}: {cause.strerror or cause}", str(path))

    def __str__(self) -> str:
        return str(self.strerror)


def env_spec(trainer) -> dict[str, Any]:
    env = trainer.env
    return {"name": env.name, "num_agents": env.num_agents, "obs_dim": env.obs_dim, "state_dim": env.state_dim,
            "num_actions": env.num_actions, "options": env.options}


def rank_state(trainer) -> dict[str, Any]:
    """What is this process's own in a distributed run: its envs, its engine's counters, its GRU states."""
    return {
        # a CUDA env cannot snapshot its state: a resumed device run starts its envs afresh (see restore)
        "env_snapshot": trainer.env._native.snapshot() if hasattr(trainer.env._native, "snapshot") else None,
        "engine": trainer.engine.counters(),
        "hidden": {"actor": trainer.actor_hidden.cpu(), "critic": trainer.critic_hidden.cpu(),
                   "starts": trainer.starts.cpu()},
    }


def state_dict(trainer, ranks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything a run needs to continue as if it had never stopped (taken between iterations).

    ``ranks`` holds each process's :func:`rank_state` in rank order: a distributed run passes every rank's, a
    single process has one (its own, the default)."""
    ranks = [rank_state(trainer)] if ranks is None else ranks
    return {
        "format": FORMAT,
        "hmasd_version": hmasd.__version__,
        "config": trainer.config.to_dict(),
        "env_spec": env_spec(trainer),
        "agent": trainer.agent.state_dict(),
        "optimizers": {name: opt.state_dict() for name, opt in trainer.agent.optimizers.items()},
        "rng": {"torch": torch.get_rng_state(), "generator": trainer.generator.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        "counters": {"iteration": trainer.iteration, "env_steps": trainer.env_steps},
        "world_size": len(ranks),
        "ranks": ranks,
        "best_eval": getattr(trainer, "best_eval", None),
        "agent_counters": {"updates_applied": list(trainer.agent.updates_applied),
                           "samples_pushed": list(trainer.agent.samples_pushed)},
    }


TMP_SUFFIX = ".tmp"
"""A checkpoint is written to ``<name>.pt.tmp`` first."""


def save(trainer, path: str | os.PathLike) -> Path:
    """Writes a checkpoint atomically: a temporary file, flushed to disk, renamed over ``path``, then the folder
    flushed so that the rename survives a power cut.

    An I/O failure (full disk, read-only folder, lost permissions) removes the temporary file, leaves the previous
    ``path`` as it was and raises :class:`CheckpointWriteError` naming ``path`` and the cause.

    In a distributed run every rank calls this at the same point (it is a collective): rank 0 gathers every rank's
    state and writes the file, and every rank raises rank 0's CheckpointWriteError if the write failed.
    """
    ranks = trainer.ranks
    if ranks is None:
        return write(state_dict(trainer), path)
    gathered = ranks.gather(rank_state(trainer))
    failure = None
    if ranks.is_main:
        try:
            write(state_dict(trainer, gathered), path)
        except CheckpointWriteError as error:
            failure = (error.errno, str(error), error.filename)
    failure = ranks.broadcast(failure)
    if failure is not None:
        raise CheckpointWriteError(*failure)
    return Path(path)


def write(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """The atomic write of :func:`save`."""
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            lock(handle)
            torch.save(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:  # also Ctrl-C: no partial file is left behind
        remove_quietly(tmp)
        cause = os_error_in(error)
        if cause is None:
            raise
        raise CheckpointWriteError.of(path, cause) from error
    try:
        fsync_dir(path.parent)
    except OSError as error:
        raise CheckpointWriteError.of(path, error) from error
    return path


def os_error_in(error: BaseException) -> OSError | None:
    """The OSError behind a failed write: ``error`` itself, or the one that torch's writer turned into a
    RuntimeError ("unexpected pos ..."). None for anything else (a Ctrl-C stays a Ctrl-C)."""
    seen: set[int] = set()
    while isinstance(error, (OSError, RuntimeError)) and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def lock(handle) -> None:
    """Marks a temporary file as being written (see remove_stale_temps). Best effort: where the file system has no
    locks the write goes on unmarked."""
    if fcntl is None:
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    except OSError as error:
        log.debug("no lock on %s: %s", handle.name, error)


def remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:  # the folder went read-only or away: nothing more can be done here
        log.warning("could not remove %s: %s", path, error.strerror or error)


def fsync_dir(folder: Path) -> None:
    """Flushes a folder's entries (a rename in it) to disk. POSIX only: without O_DIRECTORY (Windows) there is no
    handle to flush; file systems that cannot sync a folder (EINVAL) are skipped."""
    flag = getattr(os, "O_DIRECTORY", None)
    if flag is None:
        return
    fd = os.open(folder, os.O_RDONLY | flag)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Removes the ``*.pt.tmp`` files that a killed or failed write left in ``folder``; returns them.

    A write in progress (another run saving into the same folder) holds a lock on its file and is left alone.
    """
    removed = []
    for tmp in sorted(Path(folder).glob(f"*.pt{TMP_SUFFIX}")):
        try:
            if fcntl is None:
                tmp.unlink()  # fails while a writer has it open
            else:
                with open(tmp, "rb") as handle:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a writer holds it
                    tmp.unlink()
        except OSError:  # a write in progress, already gone, or not ours to remove
            continue
        removed.append(tmp)
    return removed


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a checkpoint; a missing, truncated or foreign file raises CheckpointError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated or garbage files
        raise CheckpointError(f"checkpoint {path} is not a readable hmasd checkpoint "
                              f"(truncated or corrupt?): {type(error).__name__}: {error}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"checkpoint {path} has format {found!r}, expected {FORMAT!r}")
    return data


def check_fits(data: dict[str, Any], trainer, path: str | os.PathLike = "checkpoint") -> None:
    """Raises CheckpointError when the checkpoint was made for another env or agent/skill layout."""
    spec = env_spec(trainer)
    for field in SPEC_FIELDS:
        if data["env_spec"][field] != spec[field]:
            raise CheckpointError(f"{path} was made for {field}={data['env_spec'][field]!r}, "
                                  f"but this run has {field}={spec[field]!r}")
    saved = data["config"]
    for field in ("algo", "num_team_skills", "num_indiv_skills", "hidden", "n_embd", "n_block", "n_head",
                  "skill_last_layer", "agent_pos_embedding", "recurrent", "policy_sharing"):
        if saved[field] != getattr(trainer.config, field):
            raise CheckpointError(f"{path} was made with {field}={saved[field]!r}, "
                                  f"but this run has {field}={getattr(trainer.config, field)!r}")


def restore(trainer, data: dict[str, Any], path: str | os.PathLike = "checkpoint", exact: bool = True) -> None:
    """Loads networks and optimisers; with ``exact`` also RNG, env, engine counters (resume, not fine-tuning)."""
    check_fits(data, trainer, path)
    trainer.agent.load_state_dict(data["agent"])
    for name, optimizer in trainer.agent.optimizers.items():
        # torch keeps the loaded moment tensors themselves (same dtype and device: no copy), so without the copy
        # training would update ``data`` in place and a second restore from it would not be exact
        optimizer.load_state_dict(copy.deepcopy(data["optimizers"][name]))
    trainer.best_eval = data.get("best_eval")
    trainer.agent.updates_applied = list(data["agent_counters"]["updates_applied"])
    trainer.agent.samples_pushed = list(data["agent_counters"]["samples_pushed"])
    if not exact:
        return
    if data["config"]["num_envs"] != trainer.config.num_envs:
        raise CheckpointError(f"{path} was made with num_envs={data['config']['num_envs']}; an exact resume "
                              f"needs the same, got {trainer.config.num_envs}")
    saved_ranks = data["ranks"] if "ranks" in data else [legacy_rank_state(data)]
    saved_world = len(saved_ranks)
    world, rank = (1, 0) if trainer.ranks is None else (trainer.ranks.world_size, trainer.ranks.rank)
    if saved_world != world:
        how = ("in a single process (no torchrun)" if saved_world == 1
               else f"under torchrun --nproc_per_node={saved_world} (or {saved_world} ranks over several nodes)")
        raise CheckpointError(f"{path} was saved by a run of {saved_world} rank(s), this run has {world}: each "
                              f"rank's envs and engine are in the checkpoint, so an exact resume needs the same "
                              f"world size; resume it {how}")
    own = saved_ranks[rank]
    follow_curriculum(trainer, data["counters"]["env_steps"])  # the saved envs are those of its step
    torch.set_rng_state(data["rng"]["torch"])
    trainer.generator.set_state(data["rng"]["generator"])
    if data["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(data["rng"]["cuda"])
    if own["env_snapshot"] is not None:
        trainer.env._native.restore(own["env_snapshot"])
    else:
        log.warning("%s holds no env state (it was saved from a CUDA env): the envs start from a fresh reset",
                    path)
    trainer.actor_hidden = own["hidden"]["actor"].to(trainer.device)
    trainer.critic_hidden = own["hidden"]["critic"].to(trainer.device)
    trainer.starts = own["hidden"]["starts"].to(trainer.device)
    if own["env_snapshot"] is None:  # fresh episodes: the GRU states restart with them
        trainer.starts = torch.ones_like(trainer.starts)
    trainer.engine.restore_counters(own["engine"])
    trainer.iteration = data["counters"]["iteration"]
    trainer.env_steps = data["counters"]["env_steps"]


def legacy_rank_state(data: dict[str, Any]) -> dict[str, Any]:
    """The one rank's state of a checkpoint written before distributed training (kept at the top level)."""
    return {"env_snapshot": data["env_snapshot"], "engine": data["counters"]["engine"], "hidden": data["hidden"]}


def config_of(data: dict[str, Any], **overrides: Any) -> TrainConfig:
    """The run config stored in a checkpoint, with ``overrides``."""
    known = {f for f in TrainConfig.__dataclass_fields__}
    config = TrainConfig(**{k: v for k, v in data["config"].items() if k in known})
    return config.replace(**overrides) if overrides else config
