"""``mean-scale``: CompressAI's mean-scale hyperprior (Minnen et al. 2018) with bench's trained weights.

The single-layer learned anchor, the building block of ``simulcast:mean-scale`` and COMPASS's base
layer. Weights by source (the ``@SOURCE`` of the codec spec):

* ``mean-scale`` / ``mean-scale@bench``: bench's trained zoo (``bench.zoo``,
  ``bench/weights/mean-scale-q{1..4}-*.pth.tar``), qualities 1–4.
* ``mean-scale@compressai``: CompressAI's published ``mbt2018-mean`` (MSE), qualities 1–8, from
  torch.hub's cache (``published``; never downloaded here, only by ``bench weights fetch``).

Everything below (padding, threads, bitstream) is the same for both sources.

* Sizes: any. The image is padded on the bottom and right by edge replication to a multiple of 64
  (the model's total downsampling), coded, and the reconstruction cropped back. Replication (rather
  than zeros) is what ``bench.train`` validates with and keeps the padded area cheap to code.
* Coding: CompressAI's real rANS coder, through the steps of ``model.compress``/``model.decompress``
  run one by one so that network and entropy-coding seconds are reported apart (``Encoded.timings``
  and ``last_decode_timings``: ``network``, ``entropy``).
* Determinism: torch's CPU convolutions give results that depend on the number of intra-op threads
  (oneDNN/MKL split their reductions differently), and the decoder must recompute exactly the
  hyper-decoder output the encoder used, or rANS decodes garbage. So on CPU the network always runs
  with ``NETWORK_THREADS`` (1) intra-op threads, whatever the caller set, and bitstreams and decoded
  images are bit-exact across runs and thread settings on one machine and software stack. GPU runs
  are not bit-exact with CPU runs.
* Bitstream (big-endian)::

      magic "bMSH" | version u8 | quality u8 | height u16 | width u16 | weights tag (4 bytes) |
      len(y) u32 | len(z) u32 | y string | z string | CRC32 of all preceding bytes (u32)

  The weights tag is the start of the SHA-256 of the weights file (the 8 hex digits in its name),
  so a bitstream decoded with other weights than it was made with (another source included) fails
  loudly. The latent shapes
  follow from height and width. Every byte counts in the rate.
* Hostile headers: decoding allocates for the size the header claims, so ``decode`` refuses, before
  any network runs, a picture above ``max_pixels`` (``bench decode --max-pixels``), strings that
  are not rANS strings or too short for the claimed latent (``min_hyper_bytes``), and a picture
  whose estimated decoding memory exceeds what is available (``check_memory``).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bench import zoo
from bench.codec import (
    Availability,
    BitstreamError,
    Codec,
    CodecError,
    CodecInfo,
    Encoded,
    SectionClock,
    check_image,
    weights_file_id,
)
from bench.codecs.mean_scale import published
from bench.codecs.mean_scale.fuzzing import fuzz_setup
from bench.codecs.mean_scale.weights import MODEL, QUALITY_LAMBDAS, export_command, mean_scale_from_weights
from bench.determinism import NETWORK_THREADS, fixed_network_threads
from bench.images import DEFAULT_MAX_PIXELS
from bench.measuring.complexity import LayerComplexity, count_macs, kmac_per_pixel, meta_input, on_meta
from bench.registry import register_codec

MAGIC = b"bMSH"
VERSION = 1
_HEADER = struct.Struct(">4sBBHH4sII")
_CRC = struct.Struct(">I")
MULTIPLE = 64  # g_a downsamples by 16 and h_a by another 4
MAX_SIDE = 65535  # the header stores each side as u16
# The largest picture this codec encodes (8K UHD). Not a safe decoding limit: decoding 4096² takes
# ~9 GB (g_s's activations, ~5·N bytes per pixel); decoding is bounded by ``max_pixels``, the
# string-length bound and the memory estimate below.
MAX_PIXELS = 1 << 25
BENCH_SOURCES = (None, "bench")
SOURCES = (*BENCH_SOURCES, "compressai")

# CompressAI's rANS coder (RansEncoder) writes 32-bit words and ends every string with its 64-bit
# state: a string of this coder is a multiple of 4 bytes and at least 8 bytes long.
RANS_WORD_BYTES = 4
RANS_MIN_BYTES = 8
# Bits per symbol by which rANS may undercut a symbol's ideal cost log2(2^precision / freq): its state
# stays >= 2^31 and freq <= 2^16, so the rounding of one step loses at most 2^-15/ln 2 < 2^-14 bits.
RANS_ROUNDING_BITS = 2.0**-14


def check_rans_string(string: bytes, what: str) -> None:
    """BitstreamError unless ``string`` can be a string of CompressAI's rANS coder (see above)."""
    if len(string) < RANS_MIN_BYTES or len(string) % RANS_WORD_BYTES:
        raise BitstreamError(f"{what} of {len(string)} bytes is not an entropy-coded string (rANS strings are "
                             f"multiples of {RANS_WORD_BYTES} bytes, at least {RANS_MIN_BYTES})")


def min_hyper_bytes(entropy_bottleneck: torch.nn.Module, z_size: tuple[int, int]) -> int:
    """A lower bound on the bytes of any z string of a ``z_size`` (height, width) hyper-latent.

    The entropy bottleneck codes channel c of z with one fixed CDF, whatever the picture, so every
    symbol of channel c costs at least log2(2^precision / f_c) bits, f_c the largest frequency of
    that CDF (less RANS_ROUNDING_BITS), and a rANS string holds no more information than its bits
    (its final state, 64 bits, covers its initial 31 and the rest). A header claiming a large
    picture over a short z string is refused with this before any network runs; a real string
    always passes (trained models cost 0.1 to 3.6 bits per symbol and channel: ~2.8 KB for 2048²)."""
    cdf = entropy_bottleneck._quantized_cdf.long()
    lengths = entropy_bottleneck._cdf_length.reshape(-1).long()
    precision = int(getattr(entropy_bottleneck, "entropy_coder_precision", 16))
    if cdf.numel() == 0 or cdf.shape[0] != lengths.numel():
        return 0  # no CDF tables (CompressAI raises its own error when decoding)
    columns = torch.arange(cdf.shape[1] - 1)
    freqs = (cdf[:, 1:] - cdf[:, :-1]).masked_fill(columns[None, :] >= (lengths[:, None] - 1), 0)
    largest = freqs.max(dim=1).values.clamp(min=1).double()
    costs = (precision - torch.log2(largest) - RANS_ROUNDING_BITS).clamp(min=0)
    return int(float(costs.sum()) * z_size[0] * z_size[1] // 8)


def check_hyper_string(entropy_bottleneck: torch.nn.Module, z_string: bytes, z_size: tuple[int, int],
                       what: str) -> None:
    """BitstreamError when ``z_string`` is shorter than any z string of ``z_size`` can be."""
    least = min_hyper_bytes(entropy_bottleneck, z_size)
    if len(z_string) < least:
        raise BitstreamError(f"{what}: a {z_size[1]}x{z_size[0]} hyper-latent needs at least {least} bytes, the "
                             f"string has {len(z_string)}: the header's picture size is not this stream's")


def synthesis_channels(model: torch.nn.Module) -> int:
    """N, the channel count of a mean-scale hyperprior's synthesis transform (its widest activations)."""
    return int(getattr(model, "N", None) or model.g_s[0].weight.shape[1])


def decode_bytes_per_pixel(model: torch.nn.Module) -> int:
    """Peak bytes per (padded) picture pixel of decoding with ``model``: g_s's last IGDN runs at half
    resolution on N float32 channels (N bytes per pixel per tensor) and holds about three such
    tensors plus the transposed conv's; measured 570 B/px for N=128 (2.4 GB at 2048²), so 6·N + 64."""
    return 6 * synthesis_channels(model) + 64


def available_memory() -> int | None:
    """Bytes this process can still allocate: the system's available memory, within the address-space
    limit (ulimit -v) if there is one; None where neither can be read."""
    limits = []
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as handle:
                used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            limits.append(max(0, soft - used))
    except (ImportError, OSError, ValueError):
        pass
    return min(limits) if limits else None


def check_memory(needed: int, what: str) -> None:
    """CodecError when decoding needs more memory than this process can get (checked before any
    network runs, so a picture that cannot fit fails at once instead of exhausting the machine)."""
    free = available_memory()
    if free is not None and needed > free:
        raise CodecError(f"{what} needs about {needed / 2**30:.1f} GiB to decode, {free / 2**30:.1f} GiB are "
                         "available")


def padded(size: int) -> int:
    """A side length rounded up to the next multiple of ``MULTIPLE``."""
    return -(-size // MULTIPLE) * MULTIPLE


def pad_image(x: torch.Tensor) -> torch.Tensor:
    """Replicate the bottom rows and right columns of an NxCxHxW batch up to multiples of
    ``MULTIPLE``: how this codec (and COMPASS's base layer, ``bench.codecs.compass.model``) pads."""
    height, width = x.shape[-2:]
    return F.pad(x, (0, padded(width) - width, 0, padded(height) - height), mode="replicate")


@register_codec("mean-scale")
class MeanScaleCodec(Codec):
    info = CodecInfo(
        description=("CompressAI mean-scale hyperprior (single layer) with bench's trained zoo weights, "
                       "or CompressAI's published ones (mean-scale@compressai)"),
        scalable=False,
        default_qualities=tuple(sorted(QUALITY_LAMBDAS)),
        fixed_qualities=True,  # one weights file per quality
        rate_counts=("a 22-byte header (magic, version, quality, size, weights tag, string lengths) and a "
                       "CRC-32 (integrity, 4 bytes) around the y and z strings"),
        published_sources=("compressai",),  # what `bench list` shows beside the default
        fuzz=fuzz_setup,
    )
    # Every @SOURCE names weights (none is a folder), so a bitstream file may name any (bench.registry).
    named_sources = ("bench", "compressai")
    # Decoding allocates for the size a header claims: the largest picture (per layer) ``decode``
    # accepts; ``bench decode --max-pixels`` sets it. Pictures this instance encoded itself are trusted.
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __init__(self, arg: str | None = None, source: str | None = None, device: str = "cpu") -> None:
        super().__init__(arg, source, device)
        self._models: dict[int, tuple[torch.nn.Module, Path, str]] = {}
        self._meta_models: dict[int, torch.nn.Module] = {}  # shapes only, for ``complexity``
        self._encoded_pixels = 0  # the largest picture encoded here: its decode is not a hostile claim
        if source == "compressai":
            self.info = replace(self.info, default_qualities=published.qualities())  # CompressAI's 8

    @property
    def _compressai(self) -> bool:
        return self.source == "compressai"

    def _present(self) -> list[int]:
        return published.present_qualities() if self._compressai else zoo.available_qualities(MODEL)

    # --- availability and metadata -------------------------------------------------------------
    def weights_status(self) -> tuple[str, list[int]]:
        """Where the weights come from and the qualities whose files are present (loads nothing)."""
        if self.source not in SOURCES:
            return f"unknown source {self.source!r}", []
        if self._compressai:
            return f"CompressAI zoo ({published.cache_dir()})", self._present()
        return f"bench zoo ({zoo.zoo_root()})", self._present()

    def availability(self) -> Availability:
        if self.source not in SOURCES:
            return Availability.missing(
                f"unknown weights source {self.source!r} for mean-scale: 'bench' (the trained zoo in "
                f"{zoo.zoo_root()}) or 'compressai' (CompressAI's published mbt2018-mean)"
            )
        if self.arg:
            return Availability.missing(f"mean-scale takes no argument, got {self.arg!r}")
        present = self._present()
        missing = [q for q in self.info.default_qualities if q not in present]
        if not missing:
            return Availability.ok()
        if self._compressai:
            text = published.missing_message(missing)
            if not present:
                return Availability.missing(text)
            # usable at the qualities that are cached; encoding at a missing one raises MissingWeightsError
            return Availability(True, f"only qualities {present} are cached; {text}")
        hints = "; ".join(f"{zoo.weights_pattern(MODEL, q)} (`{export_command(q)}`)"
                          for q in missing)
        where = zoo.zoo_root()
        if not present:
            return Availability.missing(f"no mean-scale weights in {where}: missing {hints}")
        # Usable at the qualities that exist; encoding at a missing one raises MissingWeightsError.
        return Availability(True, f"only qualities {present} have weights in {where}; missing {hints}")

    def coding_threads(self, requested: int) -> int:
        return requested if self.device.startswith("cuda") else NETWORK_THREADS  # bench.determinism

    def parameter_counts(self) -> dict[str, int]:
        if self.source not in SOURCES or self.arg:
            return {}
        present = self._present()
        if not present:
            return {}
        model = self._model(present[0])[0]
        counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
        counts = {name: count for name, count in counts.items() if count}
        counts["total"] = sum(p.numel() for p in model.parameters())
        return counts

    def weights_info(self) -> dict[str, str]:
        if self.source not in SOURCES or self.arg:
            return {}
        entries = []
        for quality in self._present():
            if quality in self._models:
                entries.append((quality, *self._models[quality][1:]))
            elif self._compressai:
                path = published.cached_path(quality)  # hashed once per file version, not per job
                entries.append((quality, path, weights_file_id(path, published.verify)))
            else:
                path = zoo.find_weights(MODEL, quality, how_to=export_command(quality))
                entries.append((quality, path, weights_file_id(path, zoo.verify_hash)))
        if not entries:
            return {}
        # CompressAI's files live outside bench's zoo: full paths, so the cost report finds them
        return {
            "source": "compressai" if self._compressai else "bench",
            "file": " ".join(str(path) if self._compressai else path.name for _, path, _ in entries),
            "sha256": " ".join(digest for _, _, digest in entries),
            "qualities": " ".join(str(quality) for quality, _, _ in entries),
        }

    def weights_id(self, quality: int) -> str | None:
        """The SHA-256 of ``quality``'s weights file: the loaded model's, else the file's, hashed and
        checked against its name as loading would (loads nothing); None where there is no file."""
        if self.source not in SOURCES or self.arg or quality not in self.info.default_qualities:
            return None
        if quality in self._models:
            return self._models[quality][2]
        if self._compressai:
            path = published.cached_path(quality)
            return weights_file_id(path, published.verify) if path.is_file() else None
        try:
            path = zoo.find_weights(MODEL, quality, how_to=export_command(quality))
        except zoo.MissingWeightsError:
            return None
        return weights_file_id(path, zoo.verify_hash)

    def _model(self, quality: int) -> tuple[torch.nn.Module, Path, str]:
        if self.source not in SOURCES or self.arg:
            raise CodecError(self.availability().reason)
        if quality not in self.info.default_qualities:
            raise CodecError(f"{self.spec} quality must be one of {list(self.info.default_qualities)}, got {quality}")
        if quality not in self._models:
            if self._compressai:
                self._models[quality] = published.load_mean_scale(quality, self.device)
            else:
                contents, path, digest = zoo.load_weights(MODEL, quality, how_to=export_command(quality))
                model = mean_scale_from_weights(contents, path).to(self.device)
                self._models[quality] = (model, path, digest)
        return self._models[quality]

    def complexity(self, sizes: Sequence[tuple[int, int]], quality: int) -> list[LayerComplexity]:
        """kMAC/pixel of one layer: the encoder runs g_a, h_a and h_s (its scales and means for the
        rANS coder), the decoder h_s and g_s, all on the image padded to multiples of 64."""
        if len(sizes) != 1:
            raise CodecError(f"mean-scale is single-layer: got {len(sizes)} layer sizes")
        (height, width), = sizes
        if quality not in self._meta_models:
            self._meta_models[quality] = on_meta(self._model(quality)[0])
        model = self._meta_models[quality]
        analysis, y = count_macs(lambda: model.g_a(meta_input(padded(height), padded(width))))
        hyper_analysis, z = count_macs(lambda: model.h_a(y))
        hyper_synthesis, _ = count_macs(lambda: model.h_s(z))
        synthesis, _ = count_macs(lambda: model.g_s(y))
        return [LayerComplexity(kmac_per_pixel(analysis + hyper_analysis + hyper_synthesis, height, width),
                                kmac_per_pixel(hyper_synthesis + synthesis, height, width))]

    # --- coding ---------------------------------------------------------------------------------
    def encode(self, layers: Sequence[np.ndarray], quality: int) -> Encoded:
        if len(layers) != 1:
            raise CodecError(f"mean-scale is single-layer: got {len(layers)} layers "
                             "(use simulcast:mean-scale)")
        image = layers[0]
        check_image(image)
        height, width = image.shape[:2]
        if height > MAX_SIDE or width > MAX_SIDE or height * width > MAX_PIXELS:
            raise CodecError(f"mean-scale codes images up to {MAX_SIDE} per side and {MAX_PIXELS} pixels, "
                             f"got {width}x{height}")
        model, _, digest = self._model(quality)
        self._encoded_pixels = max(self._encoded_pixels, height * width)
        x = torch.from_numpy(image.copy()).to(self.device)  # a copy: inputs may be read-only
        x = x.permute(2, 0, 1)[None].float().div_(255.0)
        x = pad_image(x)
        clock = SectionClock(self.device)
        with torch.inference_mode(), fixed_network_threads(self.device):
            y_string, z_string = _compress(model, x, clock)
        head = _HEADER.pack(MAGIC, VERSION, quality, height, width, bytes.fromhex(digest[:8]),
                            len(y_string), len(z_string))
        body = head + y_string + z_string
        data = body + _CRC.pack(zlib.crc32(body))
        return Encoded(data, [len(data)], _split(clock))

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        self.last_decode_timings = {}
        if num_layers not in (None, 1):
            raise CodecError(f"mean-scale bitstreams hold one layer, asked for {num_layers}")
        clock = SectionClock(self.device)
        pixels = self._reconstruct(bytes(data), clock).mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
        self.last_decode_timings = _split(clock)
        return [np.ascontiguousarray(pixels.permute(1, 2, 0).cpu().numpy())]

    def _reconstruct(self, data: bytes, clock: SectionClock | None = None) -> torch.Tensor:
        """The decoder's float output (3xHxW in [0, 1]), before rounding to 8 bits."""
        limit = max(self.max_pixels, self._encoded_pixels)
        quality, height, width, tag, y_string, z_string = _parse(data, self.info.default_qualities, limit)
        model, path, digest = self._model(quality)
        if bytes.fromhex(digest[:8]) != tag:
            raise BitstreamError(f"this mean-scale bitstream was made with weights whose SHA-256 starts with "
                                 f"{tag.hex()} (bench zoo: mean-scale-q{quality}-{tag.hex()}), not with "
                                 f"{path.name} ({self.spec})")
        shape = (padded(height) // MULTIPLE, padded(width) // MULTIPLE)
        # what the strings present can hold, then what decoding would allocate: both before any network
        check_hyper_string(model.entropy_bottleneck, z_string, shape, "mean-scale z string")
        check_memory(padded(height) * padded(width) * decode_bytes_per_pixel(model), f"a {width}x{height} picture")
        try:
            with torch.inference_mode(), fixed_network_threads(self.device):
                x_hat = _decompress(model, y_string, z_string, shape, clock or SectionClock(self.device))
        except (RuntimeError, ValueError, IndexError, OverflowError) as error:
            raise BitstreamError(f"mean-scale bitstream does not decode: {error}") from error
        return x_hat[0, :, :height, :width]


# CompressAI's MeanScaleHyperprior.compress/decompress (1.2.8), step by step with the same calls in
# the same order (so the bytes and pixels are those of model.compress/decompress), each step timed
# as network (g_a, h_a, h_s, g_s) or entropy coding (rANS coding and its CDF index preparation).
def _compress(model: torch.nn.Module, x: torch.Tensor, clock: SectionClock) -> tuple[bytes, bytes]:
    with clock.section("network"):
        y = model.g_a(x)
        z = model.h_a(y)
    with clock.section("entropy"):
        z_strings = model.entropy_bottleneck.compress(z)
        z_hat = model.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
    with clock.section("network"):
        scales_hat, means_hat = model.h_s(z_hat).chunk(2, 1)
    with clock.section("entropy"):
        indexes = model.gaussian_conditional.build_indexes(scales_hat)
        y_strings = model.gaussian_conditional.compress(y, indexes, means=means_hat)
    return y_strings[0], z_strings[0]


def _decompress(model: torch.nn.Module, y_string: bytes, z_string: bytes, shape: tuple[int, int],
                clock: SectionClock) -> torch.Tensor:
    with clock.section("entropy"):
        z_hat = model.entropy_bottleneck.decompress([z_string], shape)
    with clock.section("network"):
        scales_hat, means_hat = model.h_s(z_hat).chunk(2, 1)
    with clock.section("entropy"):
        indexes = model.gaussian_conditional.build_indexes(scales_hat)
        y_hat = model.gaussian_conditional.decompress([y_string], indexes, means=means_hat)
    with clock.section("network"):
        return model.g_s(y_hat).clamp_(0, 1)


def _split(clock: SectionClock) -> dict[str, float]:
    return {key: clock.seconds.get(key, 0.0) for key in ("network", "entropy")}


def _parse(data: bytes, qualities: Sequence[int],
           max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int, int, bytes, bytes, bytes]:
    """Check a mean-scale bitstream and split it; every check comes before any allocation."""
    if len(data) < _HEADER.size + _CRC.size:
        raise BitstreamError(f"mean-scale bitstream of {len(data)} bytes is shorter than its header")
    magic, version, quality, height, width, tag, y_len, z_len = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError(f"not a mean-scale bitstream (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise BitstreamError(f"mean-scale bitstream version {version} is not supported (expected {VERSION})")
    expected = _HEADER.size + y_len + z_len + _CRC.size
    if expected != len(data):
        raise BitstreamError(f"mean-scale bitstream is truncated or has trailing bytes: {len(data)} bytes, "
                             f"header says {expected}")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[: -_CRC.size]) != crc:
        raise BitstreamError("mean-scale bitstream is corrupted (CRC32 mismatch)")
    if quality not in qualities:
        raise BitstreamError(f"mean-scale bitstream names quality {quality}, not one of {sorted(qualities)}")
    if not (1 <= height and 1 <= width):
        raise BitstreamError(f"mean-scale bitstream claims a {width}x{height} image")
    if height * width > max_pixels:
        raise BitstreamError(f"mean-scale bitstream claims a {width}x{height} image, more than the limit of "
                             f"{max_pixels} pixels (bench decode --max-pixels)")
    y_start = _HEADER.size
    z_start = y_start + y_len
    y_string, z_string = data[y_start:z_start], data[z_start : z_start + z_len]
    check_rans_string(y_string, "mean-scale y string")
    check_rans_string(z_string, "mean-scale z string")
    return quality, height, width, tag, y_string, z_string
