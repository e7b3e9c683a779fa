"""The precision a run trains in, decided once, before any agent is built, and recorded.

A run has three parts whose precision can differ: the **update** (the online network's forward
and backward pass in a learning step), the **target** (the frozen target network's forward pass
and storage) and **acting** (the forward pass that picks actions). ``trainer.precision`` sets
them all:

- ``fp32``: everything in fp32.
- ``bf16``: the update, the target and acting under bf16 autocast, the opt-in (see below).
- ``auto`` (the default): **fp32 everywhere, on every device**. Nothing is timed: the choice is
  the same for every run of a sweep, at every launch, on every machine.

Why ``auto`` is fp32 (docs/performance.md, "Precision", has the table): bf16 autocast keeps
weights, optimiser state, output layers, softmax, projections and losses in fp32, and within one
update (``scripts/bf16_update_diff.py``, C51 / QR-DQN / IQN / FQF at their Atari-100k and paper
settings) it changes Q-values by 0.06-0.8%, the loss and the priorities by at most 0.4% on
average, and each parameter group's gradient by at most 4% in norm (1 - cos <= 0.0035); but not
without direction (averaged over batches, C51's and QR-DQN's gradients are 0.1-0.5% shorter in
every parameter group with the Atari-100k network, and every agent's 0.2-0.8% longer with the
paper network), and where actions' Q-values are close the greedy and bootstrap
actions flip (up to 9.4% of states, always within 0.7% of the Q-value spread).
The only learning evidence, three A/B pairs of C51 Atari-100k runs, shows no consistent
direction from too few runs to show no effect. So bf16 is a named opt-in
(``trainer.precision=bf16``), worth it where it is much faster: GPUs and CPUs with bf16 matrix
units.

On CUDA, fp32 matrix products run in full fp32 (torch's default
``torch.backends.cuda.matmul.allow_tf32 = False``), while cuDNN convolutions may use TF32 tensor
cores (torch's default ``torch.backends.cudnn.allow_tf32 = True``: inputs rounded to a 10-bit
mantissa, accumulation in fp32). The run does not change either default.

``trainer.channels_last=auto`` follows the update's precision (:meth:`RunPrecision.channels_last`):
channels-last memory format where the update runs bf16 convolutions, which oneDNN and cuDNN run
fast in it.

Every precision decision of a run is made here; the rest only applies it.
:meth:`RunPrecision.agent_kwargs` hands it to the agent as its run-level hparams ``precision``
(the update; the target follows it) and ``act_precision``, which ``agents/base.py`` applies as
bf16 autocast around torso and heads, and ``agents/runtime.py`` as bf16 storage of the frozen
target and of the acting copy (the layers autocast runs in bf16, so each computes what its fp32
original would). ``training/device.py`` (devices, threads, seeds) and
``training/compile_choice.py`` (``trainer.compile=auto``, measured in the precision decided here)
decide no precision.

A run records what it resolved (:meth:`RunPrecision.record`) in ``config.json`` (``resolved``),
in its checkpoints and so in ``distrl-report``'s settings; a resumed run keeps the precision it
started with (:func:`decide_precision` with the checkpoint's record), and refuses an explicit
``trainer.precision`` that contradicts it.
"""

from __future__ import annotations

import platform
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distrl_agents.training.config import ConfigError

#: the parts of a run whose precision is resolved and recorded
PARTS = ("update", "target", "acting")
SETTINGS = ("auto", "fp32", "bf16")
#: what ``trainer.precision=auto`` resolves to, for every part, on every device (module doc)
AUTO = "fp32"


@dataclass(frozen=True)
class RunPrecision:
    """The resolved precision (``fp32`` | ``bf16``) of each part, and how it was decided."""

    update: str
    target: str
    acting: str
    how: str = ""

    def record(self) -> dict[str, str]:
        """What config.json and checkpoints store: ``{"update": ..., "target": ..., "acting":
        ...}`` (plain strings)."""
        return {"update": self.update, "target": self.target, "acting": self.acting}

    def parts(self) -> str:
        """``update fp32, target fp32, acting fp32``."""
        return ", ".join(f"{p} {getattr(self, p)}" for p in PARTS)

    def describe(self) -> str:
        return f"precision: {self.parts()}" + (f" ({self.how})" if self.how else "")

    def agent_kwargs(self) -> dict[str, str]:
        """The agent's hparams for it (the target follows the update's precision there)."""
        return {"precision": self.update, "act_precision": self.acting}

    def channels_last(self, setting: str, torso: str) -> bool:
        """Whether the agent keeps conv activations channels-last: ``trainer.channels_last``
        ``true`` / ``false`` as set; ``auto``: where the update runs bf16 convolutions (a bf16
        update, a torso other than ``mlp``), fast in that memory format (oneDNN / cuDNN)."""
        if setting == "auto":
            return torso != "mlp" and self.update == "bf16"
        return setting == "true"


def cpu_has_bf16_kernels() -> bool:
    """Whether torch's oneDNN has bf16 kernels for this CPU
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``: AVX-512 BW/VL/DQ, AMX or Arm bf16). Where
    torch cannot say, ``True``."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def recorded_precision(state: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The precision a checkpoint ``state`` records (``resolved.precision``; checkpoints written
    before it existed: ``auto_choices``' ``precision`` / ``act_precision``), or None."""
    if not state:
        return None
    resolved = state.get("resolved")
    if isinstance(resolved, Mapping) and isinstance(resolved.get("precision"), Mapping):
        record = resolved["precision"]
        return {p: str(record[p]) for p in PARTS}
    old = state.get("auto_choices")
    if isinstance(old, Mapping) and "precision" in old:
        update = str(old["precision"])
        return {
            "update": update,
            "target": update,
            "acting": str(old.get("act_precision") or update),
        }
    return None


def decide_precision(
    setting: str, device: torch.device, recorded: Mapping[str, str] | None = None
) -> RunPrecision:
    """The run's :class:`RunPrecision` for ``trainer.precision=setting`` on ``device``.

    ``recorded`` is what the checkpoint of a resumed run recorded (:func:`recorded_precision`):
    the run keeps it, whatever ``auto`` would say now; an explicit setting that contradicts it is
    a :class:`ConfigError` (raised before anything is written).
    """
    if setting not in SETTINGS:
        raise ConfigError(
            f"trainer.precision must be one of {', '.join(SETTINGS)}; got {setting!r}."
        )
    if recorded is not None:
        kept = RunPrecision(**{p: str(recorded[p]) for p in PARTS}, how="as this run started")
        if setting != "auto" and any(getattr(kept, p) != setting for p in PARTS):
            raise ConfigError(
                f"trainer.precision={setting}, but this run started with {kept.parts()}, "
                "and a resumed run keeps the precision it started with. Resume without "
                "trainer.precision (or with trainer.precision=auto), or start a new run "
                "(another run_dir, name or seed) to train in another precision."
            )
        return kept
    if setting == "auto":
        return RunPrecision(AUTO, AUTO, AUTO, how="trainer.precision=auto: fp32 everywhere")
    if setting == "bf16" and device.type == "cpu" and not cpu_has_bf16_kernels():
        warnings.warn(
            "trainer.precision=bf16 on a CPU without bf16 kernels in torch's oneDNN (no AVX-512 "
            "BW/VL/DQ, AMX or Arm bf16): bf16 is emulated there, about 10x slower than fp32 "
            "for an update. trainer.precision=fp32 (or auto) trains in fp32.",
            stacklevel=2,
        )
    if setting == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"trainer.precision=bf16, but {torch.cuda.get_device_name(device)} has no bf16 "
            "support. Use trainer.precision=fp32 (or auto)."
        )
    return RunPrecision(setting, setting, setting, how=f"trainer.precision={setting}")


def machine_key(device: torch.device) -> dict[str, Any]:
    """What makes a start-up measurement of one machine valid on another: the device's model,
    the torch version and torch's threads."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_model()
    return {
        "device": f"{device.type}: {name}",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
