"""CompressAI's published ``mbt2018-mean`` weights (qualities 1–8), read from torch.hub's cache.

``mean-scale@compressai`` runs CompressAI's own pretrained mean-scale hyperprior instead of bench's
trained zoo. The files are the ones ``compressai.zoo.mbt2018_mean(quality, metric="mse",
pretrained=True)`` downloads: their names come from CompressAI's URL table
(``compressai.zoo.image.model_urls``, e.g. ``mbt2018-mean-3-723404a8.pth.tar``) and they live
where ``torch.hub.load_state_dict_from_url`` caches them, ``<torch.hub.get_dir()>/checkpoints/``
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``).

bench never downloads on its own: a file that is not in the cache makes the quality unavailable,
with the file name, the cache folder and the command that fetches it. ``bench weights fetch
compressai`` (``fetch``) is that command: asked explicitly, it downloads the files through
CompressAI's own URLs with torch.hub's downloader, which writes to a temporary file, checks it
against the SHA-256 prefix in the name and only then moves it into the cache.
A present file is read once, checked against the SHA-256 prefix in its name (torch.hub's naming
rule, which CompressAI follows: the prefix is all the hash CompressAI publishes, so unlike
``bench/weights``' ``SHA256SUMS.txt`` there is no full hash to check it against), unpickled with
``weights_only=True`` (``bench.zoo.load_torch_file``: tensors and plain values, never code) and loaded
the way CompressAI's zoo loads it: plain state dict →
``load_pretrained`` (old key names) → ``MeanScaleHyperprior.from_state_dict``. CompressAI's files
carry the CDF tables computed when they were exported and, like CompressAI's own evaluation,
bench codes with those tables; a file without them gets ``update(force=True)``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence
from urllib.error import URLError
from urllib.parse import urlparse

import torch

from bench.zoo import CDF_BUFFERS, MissingWeightsError, WeightsError, WeightsHashError, load_torch_file

ARCHITECTURE = "mbt2018-mean"
METRIC = "mse"
_HASH = re.compile(r"-([0-9a-f]{8,})\.")  # torch.hub's HASH_REGEX: the hash follows the last dash


def _zoo_image():
    from bench.compressai_import import import_compressai

    import_compressai()
    from compressai.zoo import image

    return image


def qualities() -> tuple[int, ...]:
    """The qualities CompressAI publishes for mbt2018-mean (MSE): 1..8."""
    return tuple(sorted(_zoo_image().model_urls[ARCHITECTURE][METRIC]))


def url(quality: int) -> str:
    table = _zoo_image().model_urls[ARCHITECTURE][METRIC]
    if quality not in table:
        raise WeightsError(f"CompressAI publishes {ARCHITECTURE} at qualities {sorted(table)}, not {quality}")
    return table[quality]


def file_name(quality: int) -> str:
    """The cached file's name, as torch.hub derives it from the URL."""
    return Path(urlparse(url(quality)).path).name


def cache_dir() -> Path:
    """torch.hub's checkpoint cache (``$TORCH_HOME/hub/checkpoints`` unless ``torch.hub.set_dir``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(quality: int) -> Path:
    return cache_dir() / file_name(quality)


def present_qualities() -> list[int]:
    return [q for q in qualities() if cached_path(q).is_file()]


def fetch_command(quality: int | None = None) -> str:
    """The command that downloads the files (one quality, or all when None)."""
    return "python -m bench weights fetch compressai" + (f" --qualities {quality}" if quality is not None else "")


def missing_message(missing: list[int]) -> str:
    names = ", ".join(file_name(q) for q in missing)
    return (f"CompressAI's pretrained {ARCHITECTURE} weights are not in torch.hub's cache {cache_dir()}: "
            f"missing {names}; bench downloads only when asked: run `{fetch_command()}` (all qualities) on a "
            "machine with network access and the same TORCH_HOME, or copy the files (from the URLs in "
            "compressai.zoo.image.model_urls) into that folder")


def _check_hash(path: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    match = _HASH.search(path.name)
    if match is None:
        raise WeightsError(f"{path.name} carries no SHA-256 prefix in its name")
    if not digest.startswith(match.group(1)):
        raise WeightsHashError(
            f"{path} is damaged or not the file its name promises: its SHA-256 starts with "
            f"{digest[: len(match.group(1))]}, the name says {match.group(1)}; delete it and fetch it again"
        )
    return digest


def verify(path: Path) -> str:
    """The file's full SHA-256, after checking it against the prefix in its name."""
    return _check_hash(path, path.read_bytes())


def load_mean_scale(quality: int, device: str = "cpu") -> tuple[torch.nn.Module, Path, str]:
    """CompressAI's pretrained mbt2018-mean at ``quality``: ``(model in eval mode, file, sha256)``."""
    path = cached_path(quality)
    if not path.is_file():
        raise MissingWeightsError(missing_message([quality]))
    data = path.read_bytes()
    digest = _check_hash(path, data)
    image = _zoo_image()
    from compressai.zoo.pretrained import load_pretrained

    # weights_only: a file that asks for code is refused, naming the file and not torch's advice
    state_dict = load_torch_file(data, path)
    try:
        if not isinstance(state_dict, dict):
            raise TypeError(f"expected a state dict, found {type(state_dict).__name__}")
        model = image.model_architectures[ARCHITECTURE].from_state_dict(load_pretrained(state_dict))
    except Exception as error:  # noqa: BLE001 - any failure here means an unusable file
        raise WeightsError(f"{path} is not a CompressAI {ARCHITECTURE} checkpoint: {error}") from error
    if any(getattr(getattr(model, m), b).numel() == 0
           for m in ("entropy_bottleneck", "gaussian_conditional") for b in CDF_BUFFERS):
        model.update(force=True)
    return model.eval().to(device), path, digest


@dataclass(frozen=True)
class Fetched:
    """What ``fetch`` did for one quality: ``downloaded`` or ``present`` (already cached and intact)."""

    quality: int
    path: Path
    status: str
    sha256: str


def _silent(_: str) -> None:
    return None


def _hash_prefix(name: str) -> str:
    match = _HASH.search(name)
    if match is None:
        raise WeightsError(f"{name} carries no SHA-256 prefix in its name; bench fetches only files it can check")
    return match.group(1)


def fetch(qualities_to_fetch: Sequence[int] | None = None, progress: bool = True,
          say: Callable[[str], None] | None = None) -> list[Fetched]:
    """Download CompressAI's mbt2018-mean (MSE) files into torch.hub's cache, through CompressAI's
    URLs (all qualities when None). A cached file that passes the hash check is kept; a damaged one
    is replaced only by a download that passes it. A download whose SHA-256 does not start with the
    prefix in its name is refused (``WeightsHashError``) and leaves nothing in the cache. ``say``
    hears each download and replacement as it starts (None: nothing is said); ``progress``: torch.hub's
    download bar."""
    if say is None:
        say = _silent
    chosen = list(qualities_to_fetch) if qualities_to_fetch is not None else list(qualities())
    for quality in chosen:
        url(quality)  # an unknown quality is refused before anything is downloaded
    results = []
    for quality in chosen:
        path = cached_path(quality)
        if path.is_file():
            try:
                results.append(Fetched(quality, path, "present", verify(path)))
                continue
            except WeightsHashError:
                say(f"q{quality}: {path} is damaged; downloading it again")
        source = url(quality)
        path.parent.mkdir(parents=True, exist_ok=True)
        say(f"q{quality}: downloading {source}")
        try:
            # torch.hub's own downloader: a temporary file beside the target, hashed while written,
            # moved into place only when its SHA-256 starts with the prefix, removed otherwise.
            torch.hub.download_url_to_file(source, str(path), hash_prefix=_hash_prefix(path.name), progress=progress)
        except RuntimeError as error:
            if "invalid hash value" not in str(error):
                raise
            raise WeightsHashError(
                f"{source} sent a file that is not the one its name promises ({error}); it was not written to "
                f"{path.parent}"
            ) from error
        except (URLError, OSError) as error:
            raise WeightsError(f"could not download {source}: {error}") from error
        results.append(Fetched(quality, path, "downloaded", verify(path)))
    return results
