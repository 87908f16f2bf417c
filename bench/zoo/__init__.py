"""Trained weights by model name and quality, verified against the hash in their file name.

Like CompressAI's zoo, a weights file is named ``{model}-q{quality}-{sha256[:8]}.pth.tar``: the
eight hex digits are the start of the SHA-256 of the file's own bytes, so a damaged or swapped file
is caught before it is used. Files live in ``bench/weights/`` (shipped with the package); the
``BENCH_WEIGHTS`` environment variable or a ``root`` argument points elsewhere (tests, experiments).

Eight hex digits catch corruption but prove no origin (2^32 tries forge a matching name), so each
folder also keeps ``SHA256SUMS.txt`` (``sha256sum``'s format: ``<64 hex>  <name>`` per line) with the
full SHA-256 of each file; ``write_weights`` (both exporters) records what it writes there. Loading
checks it (``verify_hash``, ``load_weights``): a listed file whose hash differs is refused
everywhere; in the committed ``bench/weights/``, whose list git reviews, a file must be listed. In
another folder an unlisted file (copied in by hand) is checked by its name alone, as before: that
folder is the user's own, and its list is only as trustworthy as the folder.
Files are unpickled with ``weights_only=True`` (tensors and plain values, never code):
``load_torch_file`` is the one reader of weights and checkpoints, and its refusal names the file.

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

Everything here is generic (``find_weights("compass", 2)``): a codec's own loaders, quality tables
and published-weight sources live in its plugin folder (mean-scale's in ``bench.codecs.mean_scale``).
``python -m bench.zoo record FILE…`` (``main``) lists files in their folder's ``SHA256SUMS.txt``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import pickle
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import torch

from bench.codec import CodecError
from bench.errors import BenchError

ENV_VAR = "BENCH_WEIGHTS"
SUFFIX = ".pth.tar"
HASH_DIGITS = 8
FORMAT_VERSION = 1
CDF_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")
# ``*.txt`` is in the package data (pyproject), so an installed bench ships its committed list
MANIFEST = "SHA256SUMS.txt"
_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64}) [ *](\S+)$")


class WeightsError(CodecError):
    """A weights file is missing, damaged or does not fit the model that asked for it."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    """No weights file for this model and quality."""


class WeightsHashError(WeightsError):
    """The file's SHA-256 does not start with the hash in its name."""


class WeightsManifestError(WeightsHashError):
    """The file's full SHA-256 is not the one its folder's ``SHA256SUMS.txt`` records, or a committed
    file is not listed there."""


def committed_root() -> Path:
    """``bench/weights``: the folder whose files and list git tracks."""
    return Path(__file__).resolve().parents[1] / "weights"


def zoo_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Where weights files live: ``root`` if given, else ``$BENCH_WEIGHTS``, else ``bench/weights``."""
    if root is not None:
        return Path(root)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return committed_root()


def _refusal(error: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler objected to, without its advice to load unsafely."""
    text = str(error)
    named = re.search(r"Unsupported global: GLOBAL (\S+) was not an allowed global", text)
    if named:
        return f"it asks for the Python object {named.group(1)}, which could run code"
    detail = text.split("WeightsUnpickler error:", 1)[-1].strip().split("\n")[0]
    detail = detail.split(" Please ", 1)[0].strip()
    if not detail or "weights_only" in detail:
        return "it is not a file of tensors and plain values"
    return f"it is not a file of tensors and plain values ({detail})"


def load_torch_file(source: str | os.PathLike[str] | bytes, name: str | os.PathLike[str],
                    error: type[BenchError] = WeightsError) -> Any:
    """``torch.load(source, weights_only=True)`` on the CPU, where ``source`` is a path or the bytes
    already read (and hashed) from ``name``.

    A file that asks for anything beyond tensors and plain values (dicts, lists, numbers, strings)
    is refused with ``error`` naming ``name``; torch's own message would advise loading it unsafely,
    so it is not passed on. bench's weights and training checkpoints need nothing more (a test
    checks the trainers' checkpoints hold no other global), so no extra globals are allowed."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        return torch.load(stream, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as refused:
        raise error(f"{name} was not loaded: {_refusal(refused)}; bench never runs code from a weights or "
                    "checkpoint file, so it is damaged or was not written by bench") from None
    except OSError:
        raise
    except Exception as unreadable:  # noqa: BLE001 - a torn zip, a wrong format: an unusable file
        first = (str(unreadable).strip().splitlines() or [type(unreadable).__name__])[0]
        raise error(f"cannot read {name}: {first}") from None


def weights_pattern(model: str, quality: int) -> str:
    return f"{model}-q{quality}-<sha256[:{HASH_DIGITS}]>{SUFFIX}"


def export_command(model: str, quality: int) -> str:
    """A generic hint at the command that produces the weights file for ``model`` at ``quality``
    (a plugin passes its own as ``how_to``)."""
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


def available_qualities(model: str, root: str | os.PathLike[str] | None = None) -> list[int]:
    """Qualities that have a weights file (names only; hashes are checked when loading)."""
    folder = zoo_root(root)
    if not folder.is_dir():
        return []
    regex = _name_regex(model)
    return sorted({int(m.group(1)) for p in folder.iterdir() if (m := regex.match(p.name))})


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


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, str] | None:
    """``{file name: sha256}`` from the folder's ``SHA256SUMS.txt``; None when it has none."""
    manifest = Path(folder) / MANIFEST
    try:
        text = manifest.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    entries = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _MANIFEST_LINE.match(line.strip())
        if not line.strip():
            continue
        if match is None:
            raise WeightsManifestError(f"{manifest}:{number} is not a `<sha256>  <file name>` line: {line!r}")
        entries[match.group(2)] = match.group(1)
    return entries


def _check_manifest(path: Path, digest: str) -> None:
    """Refuse ``path`` when its folder's list records another SHA-256 for it, or when it is a
    committed file that the list does not record (see the module docstring for the rule)."""
    folder = path.parent
    manifest = folder / MANIFEST
    entries = read_manifest(folder)
    committed = folder.resolve() == committed_root()
    expected = (entries or {}).get(path.name)
    if expected is None:
        if committed:
            raise WeightsManifestError(
                f"{path} is not listed in {manifest}, so its origin is unknown: export it with `python -m "
                "bench.train export` or `compass --stage export` (which record it), or, for a file you "
                f"checked yourself, `python -m bench.zoo record {path}`"
            )
        return
    if expected != digest:
        raise WeightsManifestError(
            f"{path} has SHA-256 {digest}, but {manifest} records {expected}: the file was changed after it "
            "was exported; restore it (git checkout) or export it again"
        )


def verify_hash(path: str | os.PathLike[str]) -> str:
    """Check the file's SHA-256 against the hash in its name and against its folder's list
    (``SHA256SUMS.txt``); return the full hex digest."""
    path = Path(path)
    return _verified(path, path.read_bytes())


def _verified(path: Path, data: bytes) -> str:
    digest = _check_hash(path, data)
    _check_manifest(path, digest)
    return digest


@contextlib.contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    # two exports into one folder (e.g. two qualities at a time) must not lose each other's line
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing drops the lock


def record_in_manifest(path: str | os.PathLike[str], forget: tuple[str, ...] = (),
                       digest: str | None = None) -> str:
    """Write ``path``'s full SHA-256 into its folder's ``SHA256SUMS.txt`` (created if absent),
    dropping the lines of ``forget`` (file names) and of files no longer in the folder (a line
    vouches for a file; one without a file vouches for nothing); return the digest. The list is
    rewritten whole and replaced atomically, sorted by name. ``digest``: the SHA-256 of the bytes the
    caller just wrote or checked (None: hash the file here)."""
    path = Path(path)
    digest = digest or hashlib.sha256(path.read_bytes()).hexdigest()
    folder = path.parent
    with _folder_locked(folder):
        entries = {name: listed for name, listed in (read_manifest(folder) or {}).items()
                   if name not in forget and (folder / name).is_file()}
        entries[path.name] = digest
        tmp = folder / (MANIFEST + ".tmp")
        tmp.write_text("".join(f"{entries[name]}  {name}\n" for name in sorted(entries)), encoding="utf-8")
        os.replace(tmp, folder / MANIFEST)
    return digest


def load_weights(
    model: str, quality: int, root: str | os.PathLike[str] | None = None, how_to: str | None = None
) -> tuple[dict[str, Any], Path, str]:
    """Find, verify and read a weights file: ``(contents, path, sha256)``.

    The bytes are read once, hashed (name and ``SHA256SUMS.txt``: ``verify_hash``), and the same
    bytes are unpickled (with ``weights_only``, so a file can hold tensors and plain values but no code).
    """
    path = find_weights(model, quality, root, how_to)
    data = path.read_bytes()
    digest = _verified(path, data)
    contents = load_torch_file(data, path)
    if not isinstance(contents, dict) or "state_dict" not in contents or "config" not in contents:
        raise WeightsError(f"{path} is not a bench weights file (expected state_dict and config)")
    return contents, path, digest


def precision_keys(model: torch.nn.Module) -> set[str]:
    """State-dict keys that must stay float32: those of entropy models and GDN layers."""
    from bench.compressai_import import import_compressai

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
    """Write ``{"state_dict", "config"}`` as ``{model}-q{quality}-{hash}.pth.tar``, record its full
    SHA-256 in the folder's ``SHA256SUMS.txt`` and remove older files of that model and quality (and
    their lines). Serialised in memory first so the hash is of the final bytes."""
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
    older = [old for old in _candidates(model, quality, folder) if old != path]
    # listed before the older files go: a kill in between leaves two files ("keep one"), never an
    # unlisted one
    record_in_manifest(path, forget=tuple(old.name for old in older), digest=digest)
    for old in older:
        old.unlink()
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.zoo record FILE…``: list files you have checked yourself (e.g. copied from a
    scratch zoo) in their folder's ``SHA256SUMS.txt``; the exporters do this for what they write."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.zoo", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    record = sub.add_parser("record", help="write the full SHA-256 of weights files into their folder's list")
    record.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        for path in args.files:
            digest = _check_hash(path, path.read_bytes())  # the name must still promise these bytes
            print(f"{path.parent / MANIFEST}: {record_in_manifest(path, digest=digest)}  {path.name}")
    except (WeightsError, OSError) as error:
        print(f"python -m bench.zoo record: {error}", file=sys.stderr)
        return 2
    return 0
