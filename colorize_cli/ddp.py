"""Training in several processes: torchrun's process group and the few collectives the training loop needs."""

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from colorize_cli.predictor import pick_device


def launched() -> bool:
    """True in a worker that torchrun started with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """False only in torchrun workers other than rank 0."""
    return int(os.environ.get("RANK", "0")) == 0


def default_nproc(device: str) -> int:
    """One process per CUDA device, else one per CPU core."""
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return torch.cuda.device_count()
    return os.cpu_count() or 1


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: rank 0 of 1 when not under torchrun."""

    rank: int
    size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, net: torch.nn.Module) -> torch.nn.Module:
        """`net` under DistributedDataParallel (gradients averaged over the processes), or `net` alone."""
        if self.size == 1:
            return net
        return DistributedDataParallel(net, device_ids=[self.device] if self.device.type == "cuda" else None)

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the processes."""
        if self.size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def from_main(self, compute):
        """`compute()` run in the main process only; every process gets its (picklable) result."""
        box = [compute() if self.main else None]
        if self.size > 1:
            dist.broadcast_object_list(box, src=0)
        return box[0]


@contextmanager
def process_group(device: str):
    """The World for training on `device` ("auto", "cpu", "cuda"). Under torchrun: join its process group
    (gloo on CPU; NCCL on CUDA, one GPU per process at cuda:LOCAL_RANK) and leave it at the end, errors included."""
    if not launched():
        yield World(0, 1, pick_device(device))
        return
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"  # there is no DDP backend for Apple MPS
    where = pick_device(device)
    if where.type == "mps":
        raise ValueError("--device mps: training in several processes runs on cpu or cuda")
    if where.type == "cuda":
        where = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(where)
    dist.init_process_group("nccl" if where.type == "cuda" else "gloo")
    try:
        yield World(dist.get_rank(), dist.get_world_size(), where)
        dist.barrier()  # no process leaves the group while another may still be talking to it
    finally:
        dist.destroy_process_group()


def exec_torchrun(nproc: int, args: list[str]) -> None:
    """Become `torchrun --standalone --nproc-per-node <nproc> -m colorize_cli <args>`: it gets the signals and
    its exit status is ours."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                              f"--nproc-per-node={nproc}", "-m", "colorize_cli", *args])
