"""Tiny pure-Python codecs for tests of the harness (no ffmpeg, no weights)."""

from __future__ import annotations

import numpy as np

from bench.codec import Codec, Encoded


class RawCodec(Codec):
    """A lossless single-layer codec: the raw pixels after a 4-byte size header."""

    scalable = False
    default_qualities = (1,)

    def encode(self, layers, quality: int) -> Encoded:
        (image,) = layers
        data = np.array(image.shape[:2], ">u2").tobytes() + image.tobytes()
        return Encoded(data, [len(data)])

    def decode(self, data: bytes, num_layers: int | None = None) -> list[np.ndarray]:
        height, width = np.frombuffer(data[:4], ">u2")
        return [np.frombuffer(data[4:], np.uint8).reshape(height, width, 3).copy()]
