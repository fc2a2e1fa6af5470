"""Training over a dataset for epochs, with a checkpoint after every epoch (JigsawGAN, SegGAN).

The per-image loops (``per_image.py``) optimise a fresh network on each image; here networks are
trained over a whole training split. What is common to every such training lives here:

- after each epoch, the networks, optimisers, learning-rate schedules, the random generator
  and the per-epoch log are written to one checkpoint file, atomically (a killed run leaves
  the previous epoch's checkpoint, never half a file);
- a run started again with the same configuration resumes after the last finished epoch and,
  because every random draw comes from the checkpointed generator, gives the same result as an
  uninterrupted run (seeded, on the CPU; GPU kernels may round differently);
- a finished run is not trained again: its checkpoint is read back;
- a checkpoint is verified when read (``lib.files.load_torch``: every byte against its CRC-32,
  every tensor finite): a damaged one is named, set aside and the training starts again; and a
  training whose networks turn NaN or infinite stops at that epoch with an error that names it,
  instead of writing a checkpoint that could only give NaN numbers.

A :class:`Stage` is one cached training of a method (a pre-training, a fine-tuning, SegGAN's
GAN or segmentation network): a folder named by its configuration, which holds the code's
fingerprint (``lib/code_fingerprint.py``) beside the parameters and the data's fingerprint, so
that changed code trains again instead of serving old numbers.

What one epoch does is the caller's ``epoch`` function (a method's own loop, readable top to
bottom in its module or notebook).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .. import files
from ..files import DamagedFile

CHECKPOINT = "checkpoint.pt"


def fingerprint(*arrays) -> str:
    """A short hash of the data a training sees (tensors or numpy arrays: shapes and bytes), so
    that a cached training is never reused for other data."""
    h = hashlib.sha256()
    for a in arrays:
        a = a.contiguous().cpu().numpy() if isinstance(a, torch.Tensor) else np.ascontiguousarray(a)
        h.update(str(tuple(a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def config_key(config: Mapping[str, Any]) -> str:
    """A short hash of a training's configuration: the name of its cache folder."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


class CheckpointMismatch(RuntimeError):
    """A checkpoint folder holds a run of another configuration; the message names both."""


@dataclass
class Training:
    """The state one checkpoint holds: networks, optimisers, schedules and the random generator
    from which every draw of the loop (batch order, noise, permutations) is taken."""

    modules: dict[str, torch.nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    generator: torch.Generator
    schedulers: dict[str, Any] = field(default_factory=dict)
    log: list[dict[str, float]] = field(default_factory=list)  # one row per finished epoch

    @property
    def epoch(self) -> int:
        """Epochs finished so far."""
        return len(self.log)

    def state(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "config": dict(config),
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "generator": self.generator.get_state(),
            "log": self.log,
        }

    def load(self, state: Mapping[str, Any]) -> None:
        for kind, parts in (("modules", self.modules), ("optimizers", self.optimizers),
                            ("schedulers", self.schedulers)):
            for k, part in parts.items():
                part.load_state_dict(state[kind][k])
        self.generator.set_state(state["generator"])
        self.log = list(state["log"])


def save_checkpoint(path: Path, training: Training, config: Mapping[str, Any]) -> None:
    """Write ``training`` to ``path`` atomically (to a temporary file, then renamed)."""
    files.save_torch(path, training.state(config))


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none or it is damaged (then it is
    named in a warning and set aside, ``checkpoint.pt.damaged``, and the training starts over)."""
    if not path.is_file():
        return None
    try:
        return files.load_torch(path)
    except DamagedFile as exc:
        files.set_aside(path, f"damaged checkpoint: {exc}")
        return None


class TrainingDiverged(RuntimeError):
    """A network's parameters became NaN or infinite; the message names the training and epoch."""


def _check_finite(training: Training, folder: Path, e: int, row: Mapping[str, Any]) -> None:
    for name, module in training.modules.items():
        for pname, p in module.named_parameters():
            if not torch.isfinite(p).all():
                losses = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float))
                raise TrainingDiverged(
                    f"{folder.name}: after epoch {e}, {name}'s parameter {pname} holds NaN or infinite values "
                    f"(this epoch: {losses}). Nothing of this epoch was kept; lower the learning rate or the loss "
                    "weights, or check the data.")


def train_epochs(folder: str | Path, training: Training, epochs: int, epoch: Callable[[int], dict[str, float]],
                 config: Mapping[str, Any], on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                 progress: bool = False, desc: str = "epochs") -> Training:
    """Train for ``epochs`` epochs, resuming from ``folder/checkpoint.pt`` when it holds an
    earlier part of the same run (same ``config``).

    ``epoch(e)`` trains epoch ``e`` (1-based) and returns that epoch's log row (losses, metrics);
    the loop adds ``epoch`` and ``seconds`` and then writes the checkpoint. ``on_epoch(e, row)``
    is called after the checkpoint is written (tests use it to interrupt a run).
    """
    path = Path(folder) / CHECKPOINT
    state = read_checkpoint(path)
    if state is not None:
        if state["config"] != dict(config):
            raise CheckpointMismatch(f"{path} holds a run with another configuration:\n  theirs {state['config']}\n"
                                     f"  ours   {dict(config)}\nUse another folder or delete it.")
        training.load(state)
        if training.epoch > epochs:
            raise CheckpointMismatch(f"{path} holds {training.epoch} epochs, more than the {epochs} asked for")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, initial=training.epoch, desc=desc, leave=False)
    for e in range(training.epoch + 1, epochs + 1):
        for m in training.modules.values():
            m.train()
        start = time.perf_counter()
        row = {"epoch": e, **epoch(e)}
        row["seconds"] = time.perf_counter() - start
        _check_finite(training, Path(folder), e, row)
        for s in training.schedulers.values():
            s.step()
        training.log.append(row)
        save_checkpoint(path, training, config)
        if bar is not None:
            bar.update(1)
        if on_epoch is not None:
            on_epoch(e, row)
    if bar is not None:
        bar.close()
    return training


class Stage:
    """One cached training: ``<cache>/<kind>/<label>-<key>/``, where ``key`` hashes the stage's
    configuration (its parameters, the data's fingerprint and the code's, see
    :func:`lib.code_fingerprint.code_fingerprint`). While it trains the folder holds
    ``checkpoint.pt``; once finished, its outputs (:meth:`write`), which :meth:`read` verifies.
    Opening a stage removes what killed processes left in its folder."""

    def __init__(self, cache: str | Path, kind: str, label: str, config: Mapping[str, Any]):
        self.config = dict(config)
        self.folder = Path(cache) / kind / f"{label}-{config_key(self.config)}"
        files.remove_orphans(self.folder)

    @property
    def name(self) -> str:
        """The folder's name: how a later stage names this one in its own configuration."""
        return self.folder.name

    def write(self, name: str, obj: Any) -> None:
        """An output of the finished stage: ``.pt`` (torch), ``.npz`` (a dict of arrays) or
        ``.json`` (with a checksum), written atomically."""
        path = self.folder / name
        if name.endswith(".pt"):
            files.save_torch(path, obj)
        elif name.endswith(".npz"):
            files.save_npz(path, **obj)
        else:
            files.write_json(path, obj, checksum=True)

    def read(self, *names: str) -> list[Any] | None:
        """The outputs ``names`` of a finished stage, verified; None when one is missing or
        damaged (a damaged one is named in a warning and set aside), so that the caller trains
        the stage again."""
        out = []
        for name in names:
            path = self.folder / name
            if not path.is_file():
                return None
            try:
                if name.endswith(".pt"):
                    out.append(files.load_torch(path))
                elif name.endswith(".npz"):
                    out.append(files.load_npz(path))
                else:
                    out.append(files.read_json(path, verify=True))
            except DamagedFile as exc:
                files.set_aside(path, f"damaged cached result: {exc}")
                return None
        return out

    def finish(self) -> None:
        """Drop the checkpoint once the outputs are written (the optimisers are no longer needed)."""
        (self.folder / CHECKPOINT).unlink(missing_ok=True)
