"""Synchronous data-parallel training under torchrun (torch.distributed): each rank steps a slice of the global env
batch, every batch statistic and gradient is summed over the ranks, and no rank collects batch v + 1 before every
rank has finished update v. docs/training.md ("Several processes") explains the design."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from hmasd.algo.ppo import BatchReduce

log = logging.getLogger("hmasd.train")

UPDATE_GROUPS = ("Discoverer", "Coordinator", "Discriminator.indiv", "Discriminator.team")
"""The update jobs, each with a process group of its own: the CPU runs them side by side on threads, and a group's
collectives must come in the same order on every rank, which only one thread per group guarantees."""


class DistributedError(RuntimeError):
    """Distributed training cannot start or go on (bad world size, a rank that died or hung, ranks that disagree)."""


def launched_by_torchrun() -> bool:
    """True inside a process that torchrun (or another launcher setting the env:// variables) started."""
    return all(key in os.environ for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


class GroupReduce(BatchReduce):
    """:class:`~hmasd.algo.ppo.BatchReduce` over a process group: counts, sums and gradients summed over the
    ranks, and the seconds spent in those collectives (for ``Time/Collectives/...``)."""

    distributed = True

    def __init__(self, group: Any, device: torch.device) -> None:
        self.group, self.device = group, device
        self.seconds = 0.0

    def _all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        dist.all_reduce(tensor, group=self.group)
        self.seconds += time.perf_counter() - start
        return tensor

    def count(self, n: int) -> int:
        return int(self._all_reduce(torch.tensor([n], dtype=torch.int64, device=self.device)).item())

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return self._all_reduce(tensor.detach().clone())

    @torch.no_grad()
    def gradients(self, modules: list[nn.Module]) -> None:
        """One all-reduce of every gradient of ``modules`` flattened together. A parameter without a gradient
        (unused by the loss) takes part as zeros, so every rank reduces the same layout."""
        params = [p for module in modules for p in module.parameters() if p.requires_grad]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        self._all_reduce(flat)
        offset = 0
        for p in params:
            p.grad = flat[offset:offset + p.numel()].view_as(p)
            offset += p.numel()


@dataclass
class Ranks:
    """This process's place in a distributed run and the groups its collectives go through.

    ``host`` (gloo, even next to NCCL) carries the bookkeeping: counters, statistics, objects, the sync barrier.
    ``updates`` holds one reducer per update job (NCCL on GPUs, gloo on CPUs)."""

    rank: int
    world_size: int
    backend: str
    device: torch.device
    timeout_s: float
    host: Any
    updates: dict[str, GroupReduce]
    wait_seconds: float = 0.0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def env_slice(self, num_envs: int) -> tuple[int, int]:
        """(first env, count) of this rank's slice of ``num_envs`` envs."""
        per_rank = num_envs // self.world_size
        return self.rank * per_rank, per_rank

    def collective_seconds(self) -> dict[str, float]:
        """Seconds spent in collectives since the last call, by group (and resets them)."""
        seconds = {name: reduce.seconds for name, reduce in self.updates.items()}
        seconds["Sync"] = self.wait_seconds
        for reduce in self.updates.values():
            reduce.seconds = 0.0
        self.wait_seconds = 0.0
        return seconds

    # ---- host collectives (gloo) --------------------------------------------------------------------------------
    def _timed(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self.wait_seconds += time.perf_counter() - start

    def sum(self, values: np.ndarray | list[float]) -> np.ndarray:
        """float64 values summed over the ranks."""
        tensor = torch.as_tensor(np.asarray(values, dtype=np.float64))
        self._timed(dist.all_reduce, tensor, group=self.host)
        return tensor.numpy()

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` on rank 0 (in rank order), None elsewhere."""
        out = [None] * self.world_size if self.is_main else None
        self._timed(dist.gather_object, value, out, dst=0, group=self.host)
        return out

    def all_gather(self, value: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        self._timed(dist.all_gather_object, out, value, group=self.host)
        return out

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        box = [value]
        self._timed(dist.broadcast_object_list, box, src=0, group=self.host)
        return box[0]

    def sync_barrier(self, policy_version: int, iteration: int) -> None:
        """The end of an update: returns once every rank has finished it, and checks that all of them hold the same
        policy version and iteration (a rank that disagrees would train on another policy's samples)."""
        seen = self.all_gather((policy_version, iteration))
        if len(set(seen)) != 1:
            raise DistributedError(f"ranks disagree on (policy version, iteration) after an update: {seen}")

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (they are equal by seeding; this makes it certain)."""
        tensors = list(module.state_dict().values())
        flat = torch.cat([t.detach().reshape(-1).to("cpu", torch.float64) for t in tensors])  # exact for float32
        self._timed(dist.broadcast, flat, 0, group=self.host)
        offset = 0
        with torch.no_grad():
            for t in tensors:
                t.copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def pick_device(requested: str) -> torch.device:
    """A rank's torch device: ``cuda`` (no index) means this node's GPU number LOCAL_RANK; anything else as given."""
    device = torch.device(requested)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init(num_envs: int, device_name: str, timeout_s: float) -> Ranks | None:
    """Joins the torchrun job this process belongs to (None when it runs alone: WORLD_SIZE unset or 1).

    The backend follows the device: NCCL for CUDA, gloo on CPUs. ``timeout_s`` bounds every collective, so a hung
    rank ends the job with an error instead of a hang. ``num_envs`` must split evenly over the ranks."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        return None
    world_size, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    if num_envs % world_size:
        raise DistributedError(f"num_envs={num_envs} does not split over {world_size} ranks: each rank owns "
                               f"num_envs / world_size envs, so num_envs must be a multiple of {world_size}")
    device = pick_device(device_name)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = timedelta(seconds=timeout_s)
    dist.init_process_group(backend, timeout=timeout)
    host = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else dist.group.WORLD
    updates = {name: GroupReduce(dist.new_group(backend=backend, timeout=timeout), device) for name in UPDATE_GROUPS}
    ranks = Ranks(rank, world_size, backend, device, timeout_s, host, updates)
    log.info("rank %d of %d (%s on %s): envs %d..%d of %d", rank, world_size, backend, device,
             *ranks.env_slice(num_envs)[:1], sum(ranks.env_slice(num_envs)) - 1, num_envs)
    return ranks
