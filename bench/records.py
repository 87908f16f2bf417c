"""The result record: one per codec × image × scale combination × quality × layer (harness.md).

Records are plain JSON objects (one per line in ``records.jsonl``); this module names their fields
so that the runner, the store and the report agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Record:
    codec: str  # codec spec, e.g. "simulcast:x265"
    dataset: str  # "kodak", "clic", or a folder path
    image: str  # file name within the dataset
    scales: list[float]  # inter-layer ratios s_1..s_K ([] for a single layer)
    anchor: str  # pyramid protocol: "top" or "base:0.25"
    quality: int
    layer: int  # 0 = base layer
    num_layers: int  # K + 1
    height: int
    width: int
    bits_layer: int  # bits of this layer's chunk(s) in the real bitstream
    bits_cum: int  # bits needed to decode this layer (layers 0..k for scalable codecs)
    bpp: float  # bits_cum / (height * width)
    psnr_rgb: float
    ms_ssim_rgb: float | None  # None (NaN in tables) when the layer is too small for MS-SSIM
    encode_time: float  # seconds, whole bitstream (all layers), warm-up excluded
    decode_time: float  # seconds to decode layers 0..layer
    mode: str  # "scalable" (one bitstream), "single" (this layer coded alone)
    device: str = "cpu"
    threads: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # codec timings, weights, notes

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["psnr-rgb"] = data.pop("psnr_rgb")
        data["ms-ssim-rgb"] = data.pop("ms_ssim_rgb")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Record":
        data = dict(data)
        data["psnr_rgb"] = data.pop("psnr-rgb")
        data["ms_ssim_rgb"] = data.pop("ms-ssim-rgb")
        return cls(**data)
