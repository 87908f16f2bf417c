"""The result record: one per codec × image × scale combination × quality × layer (harness.md).

``Record`` is the one schema of a record, from the runner that measures it to the report that reads
it. In code a field has one spelling, its attribute name (``psnr_rgb``); ``records.jsonl`` keeps the
spelling of CompressAI's results (``psnr-rgb``), given per field as ``disk`` metadata, and only this
module converts between the two (``to_json``/``from_json``, ``python_keys``).

Adding a metric is one field here: give it a default (``None``: records written before it existed
still load) and, when its name on disk differs, ``metadata=disk("name-on-disk")``. Float fields are
read back as floats by the store (``FLOAT_FIELDS``) and are numeric columns in the report
(``NUMERIC_FIELDS``) without further changes; the runner computes it.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

DISK_KEY = "disk"


def disk(name: str) -> dict[str, str]:
    """Field metadata: the field is spelled ``name`` in ``records.jsonl``."""
    return {DISK_KEY: name}


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
    psnr_rgb: float = field(metadata=disk("psnr-rgb"))
    # None (NaN in tables) when the layer is too small for MS-SSIM
    ms_ssim_rgb: float | None = field(metadata=disk("ms-ssim-rgb"))
    encode_time: float  # seconds, whole bitstream (all layers), warm-up excluded
    decode_time: float  # seconds to decode layers 0..layer
    mode: str  # "scalable" (one bitstream), "single" (this layer coded alone)
    device: str = "cpu"
    threads: int = 1
    # YUV metrics (bench.metrics.psnr_yuv) through the float full-range matrix ``yuv_matrix``
    # (bench.ycbcr: "bt709" or "bt601"); None in records written before they existed
    psnr_y: float | None = field(default=None, metadata=disk("psnr-y"))
    psnr_u: float | None = field(default=None, metadata=disk("psnr-u"))
    psnr_v: float | None = field(default=None, metadata=disk("psnr-v"))
    psnr_yuv: float | None = field(default=None, metadata=disk("psnr-yuv"))  # (6·Y + U + V) / 8
    yuv_matrix: str | None = None
    # −10·log10(1 − ms_ssim_rgb) (bench.metrics.ms_ssim_db); the report derives it for older records
    ms_ssim_db: float | None = field(default=None, metadata=disk("ms-ssim-db"))
    # kMAC per pixel of this layer's own networks (Codec.complexity; None: the codec cannot count)
    encode_kmac_per_pixel: float | None = None
    decode_kmac_per_pixel: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # codec timings, weights, notes

    def to_json(self) -> dict[str, Any]:
        """The record as ``records.jsonl`` spells it."""
        data = asdict(self)
        for name, key in DISK_NAMES.items():
            data[key] = data.pop(name)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Record":
        """A record from its ``records.jsonl`` form; keys this version does not know are ignored."""
        values = python_keys(data)
        return cls(**{name: values[name] for name in FIELD_NAMES if name in values})


# attribute name -> key in records.jsonl, for the fields spelled differently there
DISK_NAMES: dict[str, str] = {f.name: f.metadata[DISK_KEY] for f in fields(Record) if DISK_KEY in f.metadata}
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Record))
# keys every record on disk has (the fields without a default), in field order
REQUIRED_KEYS: tuple[str, ...] = tuple(
    DISK_NAMES.get(f.name, f.name) for f in fields(Record) if f.default is MISSING and f.default_factory is MISSING
)
# fields that hold a float (a metric, a rate, a time): on disk NaN is null and infinities are strings
FLOAT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Record) if str(f.type).split(" |")[0] == "float")
FLOAT_KEYS: tuple[str, ...] = tuple(DISK_NAMES.get(name, name) for name in FLOAT_FIELDS)
# columns the report treats as numbers: every float field and the sizes and bit counts
NUMERIC_FIELDS: tuple[str, ...] = (*FLOAT_FIELDS, "height", "width", "bits_layer", "bits_cum")


def python_keys(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a record's ``records.jsonl`` form with the attribute spellings: the renamed keys
    move to the end, in field order (the report's column order depends on it)."""
    row = dict(data)
    for name, key in DISK_NAMES.items():
        if key in row:
            row[name] = row.pop(key)
    return row
