"""Simulcast: every layer coded on its own by a single-layer codec, all in one layered container.

``simulcast:INNER`` (e.g. ``simulcast:x265``, ``simulcast:mean-scale@compressai``; a ``@SOURCE``
belongs to the inner codec) codes layer k with INNER at the same quality, independently of the
others. This is the rate a scalable codec must beat: decoding layer k needs the chunks of layers
0..k, so its bits are the sum of independent codings. The container (``bench.container``: a 6-byte
header, then per layer a varint length, a CRC32 and the inner bitstream) costs a few bytes per
layer; the header is attributed to the base layer.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from bench import container
from bench.codec import Availability, BitstreamError, Codec, CodecError, CodecInfo, Encoded, FuzzSetup
from bench.registry import UnknownCodecError, create_codec, register_codec

if TYPE_CHECKING:
    from bench.measuring.complexity import LayerComplexity

MAGIC = b"SIMC"
VERSION = 1


def _fuzz_setup(cls: type, workdir: Path, time_limit: float) -> FuzzSetup:
    from bench.codecs.fuzzing import pyramid, reseal_tail_crc, test_image
    from bench.codecs.mean_scale.fuzzing import use_tiny_mean_scale_zoo
    from bench.container import reseal_container

    use_tiny_mean_scale_zoo(workdir)
    codec = cls("mean-scale")
    seeds = [codec.encode(pyramid(test_image(48, 64, 2), (0.5, 1)), 2).data,
             codec.encode(pyramid(test_image(36, 48, 3), (0.5, 0.75, 1)), 4).data]
    return FuzzSetup(codec, seeds, layer_choices=(None, None, 1, 2),
                     reseal=lambda data: reseal_container(data, reseal_tail_crc))


# What the container adds; an instance's ``info.rate_counts`` adds what its inner codec's bytes carry.
RATE_COUNTS = ("its container: a 6-byte header, then per layer a varint length and a CRC-32 "
               "(integrity, 4 bytes) before each layer's own bitstream")


@register_codec("simulcast")
class SimulcastCodec(Codec):
    """Independent coding of each layer with an inner single-layer codec; spec ``simulcast:INNER``."""

    info = CodecInfo(
        description="simulcast: each layer coded independently by the inner codec (bits of layers 0..k summed)",
        scalable=True,
        prefix_decodable=True,  # one container chunk per layer, in order
        rate_counts=RATE_COUNTS,
        report_role="simulcast",  # the contract's simulcast anchor
        list_spec="simulcast:x265",  # the bare name needs an inner codec
        fuzz=_fuzz_setup,
    )

    def __init__(self, arg: str | None = None, source: str | None = None, device: str = "cpu") -> None:
        super().__init__(arg, source, device)
        self._inner: Codec | None = None
        self._inner_error: str | None = None
        self.info = self._layered_info()

    def _layered_info(self) -> CodecInfo:
        """This spec's ``info``: the container's facts, with what depends on the inner codec taken
        from it (its qualities, family, determinism, slowness, and what its bytes carry)."""
        from bench.registry import codec_family, rate_counts

        declared = type(self).info
        if not self.arg:
            return declared
        inner_counts = rate_counts(self.inner_spec)
        counts = RATE_COUNTS + (f"; each layer's bitstream: {inner_counts}" if inner_counts else "")
        layered = replace(declared, family=codec_family(self.inner_spec), rate_counts=counts)
        codec = self._resolve()
        if codec is None:
            return layered
        inner = codec.info
        return replace(layered, default_qualities=tuple(inner.default_qualities), fixed_qualities=inner.fixed_qualities,
                       quality_range=inner.quality_range, quality_meaning=inner.quality_meaning,
                       deterministic=inner.deterministic, slow=inner.slow)

    @property
    def inner_spec(self) -> str | None:
        if not self.arg:
            return None
        return f"{self.arg}@{self.source}" if self.source else self.arg

    def _resolve(self) -> Codec | None:
        """Create the inner codec once; on failure remember why (construction must not raise)."""
        if self._inner is None and self._inner_error is None:
            spec = self.inner_spec
            if spec is None:
                self._inner_error = "simulcast needs an inner codec: use simulcast:NAME, e.g. simulcast:x265"
            else:
                try:
                    self._inner = create_codec(spec, device=self.device)
                except UnknownCodecError as error:
                    self._inner_error = f"simulcast inner codec: {error}"
        return self._inner

    @property
    def inner(self) -> Codec:
        """The inner codec; CodecError with a clear message when the spec names none or an unknown one."""
        codec = self._resolve()
        if codec is None:
            raise CodecError(self._inner_error)
        return codec

    def availability(self) -> Availability:
        codec = self._resolve()
        if codec is None:
            return Availability.missing(self._inner_error or "no inner codec")
        status = codec.availability()
        if not status.available:
            return Availability.missing(f"inner codec {codec.spec} is unavailable: {status.reason}")
        return status

    def _available_inner(self) -> Codec:
        codec = self.inner
        status = codec.availability()
        if not status.available:
            raise CodecError(f"simulcast inner codec {codec.spec} is unavailable: {status.reason}")
        return codec

    def encode(self, layers: Sequence[np.ndarray], quality: int) -> Encoded:
        codec = self._available_inner()
        if not layers:
            raise CodecError("simulcast needs at least one layer")
        chunks: list[bytes] = []
        timings: dict[str, float] = {}
        for layer in layers:
            encoded = codec.encode([layer], quality)
            chunks.append(encoded.data)
            for key, seconds in encoded.timings.items():  # summed over layers, like the bits
                timings[key] = timings.get(key, 0.0) + seconds
        data, layer_bytes = container.pack(MAGIC, VERSION, chunks)
        return Encoded(data=data, layer_bytes=layer_bytes, timings=timings)

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        self.last_decode_timings = {}
        codec = self._available_inner()
        if num_layers is not None and num_layers < 1:
            raise CodecError(f"num_layers must be at least 1, got {num_layers}")
        chunks = container.unpack(data, MAGIC, VERSION, "simulcast", count=num_layers)
        images = []
        timings: dict[str, float] = {}
        for index, chunk in enumerate(chunks):
            try:
                images.extend(codec.decode(chunk))
            except BitstreamError as error:
                raise BitstreamError(f"simulcast layer {index}: {error}") from error
            for key, seconds in codec.last_decode_timings.items():  # summed over layers, like encode
                timings[key] = timings.get(key, 0.0) + seconds
        self.last_decode_timings = timings
        return images

    def complexity(self, sizes: Sequence[tuple[int, int]], quality: int) -> list[LayerComplexity] | None:
        """The inner codec's count for each layer on its own (None when it cannot count)."""
        codec = self._available_inner()
        layers = [codec.complexity([size], quality) for size in sizes]
        return None if any(layer is None for layer in layers) else [layer[0] for layer in layers]  # type: ignore[index]

    def parameter_counts(self) -> dict[str, int]:
        codec = self._resolve()
        return codec.parameter_counts() if codec is not None else {}

    def weights_info(self) -> dict[str, str]:
        codec = self._resolve()
        return codec.weights_info() if codec is not None else {}

    def weights_id(self, quality: int) -> str | None:
        codec = self._resolve()
        return codec.weights_id(quality) if codec is not None else None

    def coding_threads(self, requested: int) -> int:
        codec = self._resolve()
        return codec.coding_threads(requested) if codec is not None else requested

    def fingerprint(self, weights: Mapping[str, str] | None = None) -> dict[str, str]:
        codec = self._resolve()
        return codec.fingerprint(weights) if codec is not None else super().fingerprint(weights)
