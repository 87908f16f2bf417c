"""Tiny pure-Python codecs for tests of the harness (no ffmpeg, no real weights)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bench.codec import Codec, CodecInfo, Encoded, weights_file_id
from bench.hashing import sha256_file


class RawCodec(Codec):
    """A lossless single-layer codec: the raw pixels after a 4-byte size header."""

    info = CodecInfo(scalable=False, default_qualities=(1,))

    def encode(self, layers, quality: int) -> Encoded:
        (image,) = layers
        data = np.array(image.shape[:2], ">u2").tobytes() + image.tobytes()
        return Encoded(data, [len(data)])

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        height, width = np.frombuffer(data[:4], ">u2")
        return [np.frombuffer(data[4:], np.uint8).reshape(height, width, 3).copy()]


class WeightedRawCodec(RawCodec):
    """``RawCodec`` with a "weights file" per run: ``weights_id`` is the SHA-256 of the file that
    ``$BENCH_TEST_WEIGHTS`` names (None when unset), as a learned codec hashes its zoo file. Replacing
    the file's contents stands for retrained weights."""

    default_qualities = (1, 2)
    ENV_VAR = "BENCH_TEST_WEIGHTS"

    def weights_id(self, quality: int) -> str | None:
        path = os.environ.get(self.ENV_VAR)
        return weights_file_id(Path(path), sha256_file) if path else None
