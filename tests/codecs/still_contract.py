"""The tests every conventional still-image anchor (jpeg, webp, jpeg2000, av1, jpegxl) passes.

A test module subclasses ``StillCodecContract`` as ``Test<Codec>Contract``, sets the class
attributes, implements ``reference_decode`` (the format's decoder called directly, not through the
plugin) and mixes in how the codec becomes unavailable (``MissingPillowLibrary`` or
``MissingFfmpegEncoder``). Images are small and synthetic so that the whole contract runs in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from bench import container
from bench.codec import BitstreamError, CodecError, quality_problem
from bench.codecs.still import StillImageCodec
from bench.registry import codec_names, create_codec
from tests.conftest import synthetic_image


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse > 0 else float("inf")


def smooth_image(height: int, width: int) -> np.ndarray:
    """Gradients and a low-frequency wave: easy to code, so a good codec reaches high PSNR."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 255 * x / max(width - 1, 1)
    green = 255 * y / max(height - 1, 1)
    blue = 127.5 + 100 * np.sin(2 * np.pi * x / width) * np.cos(2 * np.pi * y / height)
    return np.clip(np.rint(np.stack([red, green, blue], axis=-1)), 0, 255).astype(np.uint8)


class StillCodecContract:
    """Round trip, real bytes, rate/quality order, determinism, sizes, damaged input, quality
    validation and simulcast use of one still-image codec."""

    name: ClassVar[str]
    codec_class: ClassVar[type[StillImageCodec]]
    default_qualities: ClassVar[tuple[int, ...]]
    quality_range: ClassVar[tuple[int, int]]
    higher_is_better: ClassVar[bool]  # does a larger quality number mean more bytes?
    magic: ClassVar[bytes]  # how every file of the format starts
    # PSNR on smooth_image(48, 64) at the best default quality, and at the best quality of the
    # range on tiny images (odd sizes, 1-pixel rows)
    min_psnr: ClassVar[float] = 38.0
    tiny_min_psnr: ClassVar[float] = 35.0

    def reference_decode(self, data: bytes) -> np.ndarray:
        raise NotImplementedError

    @pytest.fixture
    def codec(self) -> StillImageCodec:
        codec = create_codec(self.name)
        status = codec.availability()
        if not status.available:
            pytest.skip(f"{self.name} unavailable: {status.reason}")
        return codec  # type: ignore[return-value]

    @property
    def best_default(self) -> int:
        return max(self.default_qualities) if self.higher_is_better else min(self.default_qualities)

    @property
    def best_quality(self) -> int:
        return self.quality_range[1] if self.higher_is_better else self.quality_range[0]

    def test_registered_single_layer(self) -> None:
        assert self.name in codec_names()  # discovered without being imported by hand
        codec = create_codec(self.name)
        assert type(codec) is self.codec_class
        assert codec.info.scalable is False and codec.info.max_layers == 1
        assert codec.info.default_qualities == self.default_qualities
        assert codec.info.quality_range == self.quality_range
        assert "rate = " in codec.info.description  # `bench list` says what the counted bytes include
        assert codec.coding_threads(8) == 1
        assert codec.info.deterministic is True and codec.info.slow is False

    def test_round_trip_equals_the_real_decoder(self, codec: StillImageCodec) -> None:
        image = smooth_image(48, 64)
        encoded = codec.encode([image], self.best_default)
        (decoded,) = codec.decode(encoded.data)
        assert decoded.shape == image.shape and decoded.dtype == np.uint8
        assert psnr(decoded, image) > self.min_psnr
        assert np.array_equal(decoded, self.reference_decode(encoded.data))

    def test_bits_are_the_real_bytes(self, codec: StillImageCodec) -> None:
        encoded = codec.encode([smooth_image(48, 64)], self.default_qualities[2])
        assert encoded.layer_bytes == [len(encoded.data)]
        assert encoded.data.startswith(self.magic)

    def test_better_quality_gives_more_bytes_and_higher_psnr(self, codec: StillImageCodec) -> None:
        image = synthetic_image(96, 128, 3)  # noisy enough that every default quality differs
        ladder = sorted(self.default_qualities, reverse=not self.higher_is_better)  # worst first
        results = []
        for quality in ladder:
            encoded = codec.encode([image], quality)
            results.append((len(encoded.data), psnr(codec.decode(encoded.data)[0], image)))
        sizes = [size for size, _ in results]
        qualities = [value for _, value in results]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(ladder)
        assert qualities == sorted(qualities)

    def test_deterministic(self, codec: StillImageCodec) -> None:
        image = np.random.default_rng(7).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        quality = self.default_qualities[3]
        first = codec.encode([image], quality).data
        assert codec.encode([image], quality).data == first
        assert create_codec(self.name).encode([image], quality).data == first  # a fresh instance too

    @pytest.mark.parametrize("height,width", [(23, 37), (5, 3), (1, 40), (17, 16)])
    def test_odd_and_tiny_sizes(self, codec: StillImageCodec, height: int, width: int) -> None:
        image = smooth_image(height, width)
        (decoded,) = codec.decode(codec.encode([image], self.best_quality).data)
        assert decoded.shape == (height, width, 3)
        assert psnr(decoded, image) > self.tiny_min_psnr

    def test_damaged_bytes_raise_bitstream_error(self, codec: StillImageCodec) -> None:
        data = codec.encode([smooth_image(48, 64)], self.default_qualities[2]).data
        garbage = np.random.default_rng(3).integers(0, 256, 500, dtype=np.uint8).tobytes()
        for damaged in (b"", garbage, data[: len(data) // 2], data[:8], self.magic + garbage):
            with pytest.raises(BitstreamError):
                codec.decode(damaged)
        with pytest.raises(CodecError, match="single-layer"):
            codec.decode(data, num_layers=2)

    def test_impossible_quality_is_refused(self) -> None:
        codec = create_codec(self.name)
        low, high = self.quality_range
        assert all(quality_problem(codec, quality) is None for quality in (*self.default_qualities, low, high))
        for bad in (low - 1, high + 1, 2.5, True):
            problem = quality_problem(codec, bad)  # type: ignore[arg-type]
            assert problem is not None and self.name in problem and f"{low}..{high}" in problem
            with pytest.raises(CodecError, match=f"{low}\\.\\.{high}"):
                codec.encode([smooth_image(16, 16)], bad)  # type: ignore[arg-type]
        # simulcast declares its inner codec's qualities, so `simulcast:NAME` refuses the same ones
        layered = create_codec(f"simulcast:{self.name}")
        assert quality_problem(layered, high) is None
        assert f"simulcast:{self.name} quality is" in quality_problem(layered, high + 1) and f"{low}..{high}" in (
            quality_problem(layered, high + 1))

    def test_impossible_quality_stops_a_run_before_it_starts(self, capsys, tmp_path: Path, make_image_folder) -> None:
        from bench.cli import main

        folder = make_image_folder(1)
        bad = str(self.quality_range[1] + 1)
        assert main(["run", "--codecs", self.name, "--qualities", bad, "--dataset", str(folder),
                     "--out", str(tmp_path / "run"), "--no-progress"]) == 2  # fmt: skip
        assert bad in capsys.readouterr().err
        assert not (tmp_path / "run" / "records.jsonl").exists()

    def test_bad_input_raises_codec_error(self, codec: StillImageCodec) -> None:
        image = smooth_image(16, 16)
        with pytest.raises(CodecError, match="single-layer"):
            codec.encode([image, image], self.best_default)
        with pytest.raises(CodecError, match="uint8"):
            codec.encode([image.astype(np.float32)], self.best_default)
        with pytest.raises(CodecError, match="empty"):
            codec.encode([np.zeros((0, 16, 3), dtype=np.uint8)], self.best_default)

    def test_simulcast_codes_two_layers(self, codec: StillImageCodec) -> None:
        layers = [synthetic_image(24, 32, 1), synthetic_image(48, 64, 2)]
        quality = self.default_qualities[2]
        simulcast = create_codec(f"simulcast:{self.name}")
        assert simulcast.availability().available and simulcast.info.default_qualities == self.default_qualities
        encoded = simulcast.encode(layers, quality)
        alone = [codec.encode([layer], quality).data for layer in layers]
        assert max(len(data) for data in alone) < 2**14  # so each varint length takes 1 or 2 bytes
        # per layer: varint length + CRC32 + the codec's own file; the container header goes to layer 0
        expected = [len(data) + (1 if len(data) < 128 else 2) + 4 for data in alone]
        expected[0] += container.HEADER_SIZE
        assert encoded.layer_bytes == expected
        decoded = simulcast.decode(encoded.data)
        assert [image.shape for image in decoded] == [layer.shape for layer in layers]
        for image, data in zip(decoded, alone):
            assert np.array_equal(image, codec.decode(data)[0])
        (base,) = simulcast.decode(encoded.data[: encoded.layer_bytes[0]], num_layers=1)
        assert np.array_equal(base, decoded[0])

    def test_fuzz_seeds_decode(self, codec: StillImageCodec, tmp_path: Path) -> None:
        setup = self.codec_class.info.fuzz(self.codec_class, tmp_path, 10.0)
        assert setup.decode is not None and len(setup.seeds) == 2
        for seed, shape in zip(setup.seeds, [(24, 32, 3), (12, 20, 3)]):
            (image,) = setup.decode(seed, None)
            assert image.shape == shape
        with pytest.raises(BitstreamError):
            setup.decode(setup.seeds[0][: len(setup.seeds[0]) // 2], None)


class MissingPillowLibrary:
    """The codec is unavailable, with a reason, where Pillow lacks the format's library."""

    name: ClassVar[str]
    pillow_feature: ClassVar[str]  # the ``PIL.features`` name of the library

    def test_unavailable_without_the_library(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from PIL import features

        check = features.check
        missing = self.pillow_feature
        monkeypatch.setattr(features, "check", lambda feature: feature != missing and check(feature))
        codec = create_codec(self.name)
        status = codec.availability()
        assert not status.available and f"features.check({self.pillow_feature!r}) is False" in status.reason
        with pytest.raises(CodecError, match=f"{self.name} is unavailable"):
            codec.encode([smooth_image(16, 16)], codec.info.default_qualities[0])
        assert not create_codec(f"simulcast:{self.name}").availability().available


class MissingFfmpegEncoder:
    """The codec is unavailable, with a reason, without ffmpeg or without the encoder in it."""

    name: ClassVar[str]
    ffmpeg_encoder: ClassVar[str]

    def test_unavailable_without_ffmpeg(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no ffmpeg anywhere on PATH
        codec = create_codec(self.name)
        status = codec.availability()
        assert not status.available
        assert "ffmpeg not found" in status.reason and "apt-get install ffmpeg" in status.reason
        with pytest.raises(CodecError, match="ffmpeg not found"):
            codec.encode([smooth_image(16, 16)], codec.info.default_qualities[0])

    def test_unavailable_without_the_encoder(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        fake = tmp_path / "ffmpeg"  # an ffmpeg whose encoder list has x265 but not this codec's encoder
        fake.write_text("#!/bin/sh\necho ' V....D libx265  libx265 H.265 / HEVC'\n")
        fake.chmod(0o755)
        monkeypatch.setenv("PATH", str(tmp_path))
        status = create_codec(self.name).availability()
        assert not status.available and f"no {self.ffmpeg_encoder} encoder" in status.reason
        assert "unavailable" in create_codec(f"simulcast:{self.name}").availability().reason
