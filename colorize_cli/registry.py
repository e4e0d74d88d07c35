"""The registry: `--arch N` -> network class and shipped weights file; safe weights loading."""

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from colorize_cli import networks
from colorize_cli.errors import first_line
from colorize_cli.files import atomic_path, write_text_atomic


class WeightsError(Exception):
    """A weights file is missing, unreadable, corrupt or for another network."""


@dataclass(frozen=True)
class Arch:
    number: int
    network: type[nn.Module]
    weights_file: str


ARCHS = {
    n: Arch(n, cls, f"arch{n}.pt")
    for n, cls in enumerate(
        (networks.Network1, networks.Network2, networks.Network3, networks.Network4, networks.Network5, networks.Network6),
        start=1,
    )
}
DEFAULT_ARCH = 6


def models_dir() -> Path:
    """The shipped weights: inside the installed package, or the top-level models/ of a checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "models"
    return installed if installed.is_dir() else here.parent / "models"


def shipped_weights(arch: int) -> Path:
    """Where the weights shipped for network `arch` are."""
    return models_dir() / ARCHS[arch].weights_file


def build_network(arch: int) -> nn.Module:
    if arch not in ARCHS:
        raise WeightsError(f"unknown network {arch}: choose 1 to {len(ARCHS)}")
    return ARCHS[arch].network()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_tensors(path: Path):
    """torch.load with weights_only=True (never runs pickled code), its warnings kept off the terminal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


def unreadable_reason(exc: Exception) -> str:
    """Why load_tensors failed, in a few words (torch's own text advises loading unsafely: not repeated)."""
    if str(exc).strip().startswith("Weights only load failed"):
        return "it holds pickled objects, not only tensors; colorize loads tensors only"
    return first_line(exc)


def read_weights(path: Path) -> tuple[dict, dict]:
    """Load (state_dict, meta) from an exported weights file or a training checkpoint, safely."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        blob = load_tensors(path)
    except Exception as exc:  # torch raises many types for corrupt or truncated files
        raise WeightsError(f"{path}: not a readable weights file ({unreadable_reason(exc)})") from None
    if isinstance(blob, dict) and "state_dict" in blob:
        return blob["state_dict"], dict(blob.get("meta", {}))
    if isinstance(blob, dict) and "model" in blob:  # a training checkpoint: its moving average where it has one
        return blob.get("average") or blob["model"], {"arch": blob.get("arch"), "epoch": blob.get("epoch")}
    raise WeightsError(f"{path}: not a colorize weights file or checkpoint")


def check_manifest(path: Path) -> None:
    """Shipped weights must match the sha256 recorded in manifest.json beside them."""
    manifest = path.parent / "manifest.json"
    if not manifest.is_file():
        return
    entry = json.loads(manifest.read_text()).get(path.name)
    if entry and entry["sha256"] != sha256_of(path):
        raise WeightsError(f"{path}: sha256 does not match {manifest}; the file is damaged or replaced")


def load_network(arch: int | None = None, weights: Path | None = None, device: str = "cpu") -> tuple[nn.Module, int]:
    """Build network `arch` with its weights (shipped default, or `weights`), in eval mode on `device`."""
    if weights is None:
        arch = DEFAULT_ARCH if arch is None else arch
        build_network(arch)  # validates the number
        weights = shipped_weights(arch)
        if not weights.is_file():
            raise WeightsError(
                f"no trained weights for network {arch} at {weights}; "
                f"train them with `colorize train --arch {arch} ... --export {weights}` or pass --weights"
            )
        check_manifest(weights)
    state, meta = read_weights(weights)
    saved_arch = meta.get("arch")
    if arch is None:
        arch = saved_arch or DEFAULT_ARCH
    elif saved_arch is not None and saved_arch != arch:
        raise WeightsError(f"{weights}: weights are for network {saved_arch}, not network {arch}")
    net = build_network(arch)
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (RuntimeError, AttributeError) as exc:
        raise WeightsError(f"{weights}: does not fit network {arch} ({first_line(exc)})") from None
    return net.to(device).eval(), arch


HALF_FROM = 4096  # tensors this large or larger are stored in fp16; biases, batch norm and small convs stay fp32


def write_weights(net: nn.Module, arch: int, dest: Path, meta: dict | None = None, half: bool = True) -> dict:
    """Save `net` as a weights-only file (state dict + metadata), its large tensors in fp16 by default;
    record its sha256 in manifest.json beside it. Returns the manifest entry.

    Small tensors stay fp32: the U-Nets' last layers carry values near 1 (see `UNet.init_output`),
    where fp16's step of 1e-3 would show in the output."""
    state = {k: (v.half() if half and v.is_floating_point() and v.numel() >= HALF_FROM else v)
             for k, v in net.state_dict().items()}
    meta = {**(meta or {}), "arch": arch, "storage": "float16" if half else "float32"}
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        torch.save({"state_dict": state, "meta": meta}, tmp)
    read_weights(dest)  # proves it loads with weights_only=True
    manifest_path = dest.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest[dest.name] = {"sha256": sha256_of(dest), "bytes": dest.stat().st_size, "meta": meta}
    write_text_atomic(manifest_path, json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
    return manifest[dest.name]
