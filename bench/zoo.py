"""Trained weights by model name and quality, verified against the hash in their file name.

Like CompressAI's zoo, a weights file is named ``{model}-q{quality}-{sha256[:8]}.pth.tar``: the
eight hex digits are the start of the SHA-256 of the file's own bytes, so a damaged or swapped file
is caught before it is used. Files live in ``bench/weights/`` (shipped with the package); the
``BENCH_WEIGHTS`` environment variable or a ``root`` argument points elsewhere (tests, experiments).

A file holds ``{"state_dict": …, "config": {…}}``. Convolution weights and biases are stored in half
precision (or the weights as int8 with a scale per output channel: ``compact_precision``);
everything in the entropy models and the GDN layers stays float32 (``precision_keys``):
the entropy models' medians and scale table decide the symbols and coding tables, and GDN's
reparametrisation constants (a pedestal of 2^-36, bounds of 2^-18) underflow in float16. They are
a few percent of the parameters.
The integer CDF tables computed by ``update(force=True)`` at export time are stored too and loaded
as they are, so every decoder uses the very tables the encoder used (no recomputation that a
different CPU or library version might round differently) and loading skips the CDF computation.
``bench/weights/README.md`` records the measurements behind both choices.

The lookup and hash functions are generic (``find_weights("compass", 2)``); ``load_mean_scale`` is
the mean-scale loader.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any

import torch

from bench.codec import CodecError

# Quality -> λ of R + λ·255²·MSE: the four λs of COMPASS's base layer.
QUALITY_LAMBDAS: dict[int, float] = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.013}

ENV_VAR = "BENCH_WEIGHTS"
SUFFIX = ".pth.tar"
HASH_DIGITS = 8
FORMAT_VERSION = 1
CDF_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")


class WeightsError(CodecError):
    """A weights file is missing, damaged or does not fit the model that asked for it."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    """No weights file for this model and quality."""


class WeightsHashError(WeightsError):
    """The file's SHA-256 does not start with the hash in its name."""


def zoo_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Where weights files live: ``root`` if given, else ``$BENCH_WEIGHTS``, else ``bench/weights``."""
    if root is not None:
        return Path(root)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path(__file__).resolve().parent / "weights"


def weights_pattern(model: str, quality: int) -> str:
    return f"{model}-q{quality}-<sha256[:{HASH_DIGITS}]>{SUFFIX}"


def export_command(model: str, quality: int) -> str:
    """The command that produces the weights file for ``model`` at ``quality``."""
    if model == "mean-scale" and quality in QUALITY_LAMBDAS:
        return (f"python -m bench.train export --checkpoint checkpoints/ms-64x96-l{QUALITY_LAMBDAS[quality]}"
                f"/last.pt --quality {quality}")
    return f"python -m bench.train export ... --quality {quality}  (export {model}'s trained checkpoint)"


def _name_regex(model: str, quality: int | None = None) -> re.Pattern[str]:
    q = str(quality) if quality is not None else r"(\d+)"
    return re.compile(rf"^{re.escape(model)}-q{q}-([0-9a-f]{{{HASH_DIGITS}}}){re.escape(SUFFIX)}$")


def _candidates(model: str, quality: int, folder: Path) -> list[Path]:
    regex = _name_regex(model, quality)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if regex.match(p.name))


def find_weights(
    model: str,
    quality: int,
    root: str | os.PathLike[str] | None = None,
    how_to: str | None = None,
) -> Path:
    """The weights file of ``model`` at ``quality`` (not yet verified; see ``verify_hash``)."""
    folder = zoo_root(root)
    found = _candidates(model, quality, folder)
    if not found:
        raise MissingWeightsError(
            f"no {model} weights for quality {quality}: expected {folder / weights_pattern(model, quality)}; "
            f"produce it with `{how_to or export_command(model, quality)}`"
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise WeightsError(f"several {model} weights files for quality {quality} in {folder}: {names}; "
                           "keep one")
    return found[0]


def available_qualities(model: str = "mean-scale", root: str | os.PathLike[str] | None = None) -> list[int]:
    """Qualities that have a weights file (names only; hashes are checked when loading)."""
    folder = zoo_root(root)
    if not folder.is_dir():
        return []
    regex = _name_regex(model)
    return sorted({int(m.group(1)) for p in folder.iterdir() if (m := regex.match(p.name))})


def weights_path(quality: int, root: str | os.PathLike[str] | None = None) -> Path:
    """The mean-scale weights file for ``quality``."""
    return find_weights("mean-scale", quality, root)


def _expected_hash(path: Path) -> str:
    match = re.search(rf"-([0-9a-f]{{{HASH_DIGITS}}}){re.escape(SUFFIX)}$", path.name)
    if match is None:
        raise WeightsError(f"{path.name} does not end in -<{HASH_DIGITS} hex digits>{SUFFIX}")
    return match.group(1)


def _check_hash(path: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    if not digest.startswith(_expected_hash(path)):
        raise WeightsHashError(
            f"{path} is damaged or not the file its name promises: its SHA-256 starts with "
            f"{digest[:HASH_DIGITS]}, the name says {_expected_hash(path)}; export it again"
        )
    return digest


def verify_hash(path: str | os.PathLike[str]) -> str:
    """Check that the file's SHA-256 starts with the hash in its name; return the full hex digest."""
    path = Path(path)
    return _check_hash(path, path.read_bytes())


def load_weights(
    model: str, quality: int, root: str | os.PathLike[str] | None = None, how_to: str | None = None
) -> tuple[dict[str, Any], Path, str]:
    """Find, verify and read a weights file: ``(contents, path, sha256)``.

    The bytes are read once, hashed, and the same bytes are unpickled (with ``weights_only``, so a
    file can hold tensors and plain values but no code).
    """
    path = find_weights(model, quality, root, how_to)
    data = path.read_bytes()
    digest = _check_hash(path, data)
    try:
        contents = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise WeightsError(f"cannot read {path}: {error}") from error
    if not isinstance(contents, dict) or "state_dict" not in contents or "config" not in contents:
        raise WeightsError(f"{path} is not a bench weights file (expected state_dict and config)")
    return contents, path, digest


def precision_keys(model: torch.nn.Module) -> set[str]:
    """State-dict keys that must stay float32: those of entropy models and GDN layers."""
    from bench._compressai import import_compressai

    import_compressai()
    from compressai.entropy_models import EntropyModel
    from compressai.layers import GDN

    keys = set()
    for prefix, module in model.named_modules():
        if isinstance(module, (EntropyModel, GDN)):
            keys.update(f"{prefix}.{name}" for name in module.state_dict())
    return keys


def half_precision(state_dict: dict[str, torch.Tensor], keep_fp32: set[str]) -> dict[str, torch.Tensor]:
    """Floating tensors to float16, except the keys in ``keep_fp32``; refuses values float16 cannot hold."""
    out = {}
    for name, tensor in state_dict.items():
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point() and name not in keep_fp32:
            half = tensor.to(torch.float16)
            if not torch.isfinite(half).all():
                raise WeightsError(f"{name} has values beyond float16's range; keep it in float32")
            out[name] = half
        else:
            out[name] = tensor.clone()
    return out


# Storage of convolution weights in a zoo file: float16, or int8 with one float32 scale per output
# channel (dim 0) under ``{key}{INT8_SCALE}``. int8 halves the files again, so that larger models fit
# the repository's weights budget; bench/weights/README.md records what it costs in RD.
STORAGES = ("float16", "int8")
INT8_SCALE = ".int8_scale"


def compact_precision(state_dict: dict[str, torch.Tensor], keep_fp32: set[str],
                      storage: str = "float16") -> dict[str, torch.Tensor]:
    """``half_precision``, or with ``storage="int8"`` the 4-D convolution weights as int8 with a
    float32 scale per output channel (symmetric, round to nearest: at most half a step off)."""
    if storage not in STORAGES:
        raise WeightsError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    out = half_precision(state_dict, keep_fp32)
    if storage == "int8":
        for name, tensor in state_dict.items():
            if name in keep_fp32 or not tensor.is_floating_point() or tensor.dim() != 4:
                continue
            tensor = tensor.detach().cpu().float()
            scale = tensor.abs().amax(dim=(1, 2, 3)).clamp_min(torch.finfo(torch.float32).tiny) / 127
            out[name] = (tensor / scale.view(-1, 1, 1, 1)).round().clamp(-127, 127).to(torch.int8)
            out[name + INT8_SCALE] = scale
    return out


def full_precision(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A zoo file's state dict in float32, as the model's ``load_state_dict`` takes it (int8
    convolutions multiplied back by their scales, the scale entries dropped)."""
    out = {}
    for name, tensor in state_dict.items():
        if name.endswith(INT8_SCALE):
            continue
        scale = state_dict.get(name + INT8_SCALE)
        if scale is not None:
            out[name] = tensor.float() * scale.float().view(-1, *([1] * (tensor.dim() - 1)))
        else:
            out[name] = tensor.float() if tensor.is_floating_point() else tensor
    return out


def storage_of(state_dict: dict[str, torch.Tensor]) -> str:
    """How a zoo file stores its convolution weights (``STORAGES``)."""
    return "int8" if any(name.endswith(INT8_SCALE) for name in state_dict) else "float16"


def write_weights(
    model: str,
    quality: int,
    state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``{"state_dict", "config"}`` as ``{model}-q{quality}-{hash}.pth.tar`` and remove older
    files of that model and quality. Serialised in memory first so the hash is of the final bytes."""
    folder = zoo_root(root)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"state_dict": state_dict, "config": config}, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    path = folder / f"{model}-q{quality}-{digest[:HASH_DIGITS]}{SUFFIX}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    for old in _candidates(model, quality, folder):
        if old != path:
            old.unlink()
    return path


def build_mean_scale(n: int, m: int) -> torch.nn.Module:
    from bench._compressai import import_compressai

    import_compressai()
    from compressai.models import MeanScaleHyperprior

    return MeanScaleHyperprior(N=n, M=m)


def mean_scale_from_weights(contents: dict[str, Any], path: Path | str = "weights") -> torch.nn.Module:
    """A ready MeanScaleHyperprior (float32, eval mode, stored CDF tables) from a file's contents."""
    config, state_dict = contents["config"], contents["state_dict"]
    try:
        model = build_mean_scale(int(config["N"]), int(config["M"]))
        model.load_state_dict(full_precision(state_dict))  # CompressAI resizes the CDF buffers to fit
    except (KeyError, RuntimeError, ValueError) as error:
        raise WeightsError(f"{path} does not fit MeanScaleHyperprior: {error}") from error
    for module_name in ("entropy_bottleneck", "gaussian_conditional"):
        module = getattr(model, module_name)
        if any(getattr(module, buffer).numel() == 0 for buffer in CDF_BUFFERS):
            raise WeightsError(f"{path} holds no {module_name} CDF tables; export it with bench.train export")
    return model.eval()


def load_mean_scale(
    quality: int, device: str = "cpu", root: str | os.PathLike[str] | None = None
) -> torch.nn.Module:
    """CompressAI's MeanScaleHyperprior with the zoo weights for ``quality``, ready to ``compress``."""
    contents, path, _ = load_weights("mean-scale", quality, root)
    return mean_scale_from_weights(contents, path).to(device)
