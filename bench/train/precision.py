"""Training precision: ``fp32``, or ``bf16`` mixed precision for the convolutional transforms.

Under ``bf16`` the analysis/synthesis transforms (and LIFF, the RC's transforms) run under
``torch.autocast(dtype=torch.bfloat16)`` with the model and batch in ``channels_last``: on CPUs
with AMX-BF16 (and on GPUs with bf16 tensor cores) a step is about 3x faster, and per step it
learns as fp32 does. Everything that turns values into probabilities stays in fp32: the entropy
bottleneck, the Gaussian conditional and the loss. A likelihood is the difference of two CDF
values, and bf16's 8-bit mantissa would wipe it out. Callers therefore ``.float()`` a
transform's output before it enters an entropy model.

The master weights, the optimizer state, checkpoints and exported zoo files stay fp32 (zoo files
then store convolutions in fp16 as before): inference and bitstreams do not depend on how a model
was trained.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from bench.errors import TrainingError

PRECISIONS = ("fp32", "bf16")


class PrecisionError(TrainingError):
    """The requested training precision is not available on this device."""


def bf16_problem(device: torch.device) -> str:
    """Why ``device`` cannot train in bf16 at useful speed ('' when it can)."""
    if device.type == "cuda":
        return "" if torch.cuda.is_bf16_supported() else f"{torch.cuda.get_device_name(device)} has no bf16 support"
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        amx = bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)())
        avx512_bf16 = bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
        if amx or avx512_bf16:
            return ""
        return ("this CPU has neither AMX-BF16 nor AVX512-BF16 (grep amx_bf16 /proc/cpuinfo): "
                "bf16 would be emulated and slower than fp32")
    return f"bf16 training is not supported on device type {device.type!r}"


def resolve_precision(requested: str, device: torch.device) -> str:
    """The precision to train in: ``requested``, or fp32 with a message when bf16 cannot run here.

    ``bf16`` falls back to ``fp32`` (printed, and recorded as such in the checkpoint) rather than
    failing, so one command line works on every machine; ``bf16!`` insists and fails instead.
    """
    strict = requested.endswith("!")
    name = requested.rstrip("!")
    if name not in PRECISIONS:
        raise PrecisionError(f"--precision must be one of {', '.join(PRECISIONS)} (bf16! to refuse a fallback), "
                             f"got {requested!r}")
    if name == "fp32":
        return name
    problem = bf16_problem(device)
    if not problem:
        return name
    if strict:
        raise PrecisionError(f"--precision bf16! cannot run here: {problem}")
    print(f"--precision bf16 falls back to fp32: {problem}", flush=True)
    return "fp32"


def autocast(precision: str, device: torch.device) -> ContextManager:
    """The context the transforms run in: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(precision: str) -> torch.memory_format:
    """channels_last under bf16 (oneDNN's and cuDNN's fast layout for bf16 convolutions)."""
    return torch.channels_last if precision == "bf16" else torch.contiguous_format


def add_precision_argument(parser) -> None:  # noqa: ANN001 - argparse parser or group
    parser.add_argument(
        "--precision", default="fp32",
        help="fp32, or bf16: transforms under bf16 autocast + channels_last, entropy models and loss "
             "in fp32 (≈3x faster on AMX-BF16 CPUs); falls back to fp32 with a message where bf16 "
             "cannot run, bf16! fails instead",
    )
