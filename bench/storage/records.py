"""The result record: one per codec × image × scale combination × quality × layer (harness.md).

``Record`` is the one schema of a record, from the runner that measures it to the report that reads
it. In code a field has one spelling, its attribute name (``psnr_rgb``); ``records.jsonl`` keeps the
spelling of CompressAI's results (``psnr-rgb``), given per field as ``disk`` metadata, and only this
module converts between the two (``to_json``/``from_json``, ``python_keys``).

Adding a metric is one field here: give it a default (``None``: records written before it existed
still load) and, when its name on disk differs, ``metadata=disk("name-on-disk")``. Float fields are
read back as floats by the store (``FLOAT_FIELDS``) and are numeric columns in the report
(``NUMERIC_FIELDS``) without further changes; the runner computes it.

A record's ``extra`` (``RecordExtra``) holds what is not a metric: the job's costs (codec seconds,
warm-up, memory), the codec's parameters and weights, codec-internal timing splits and notes. Each
key it carries is a typed field there, spelled as on disk; adding one is one field with a default of
None (None: the key is absent, and records that lack it still load).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

DISK_KEY = "disk"


def disk(name: str) -> dict[str, str]:
    """Field metadata: the field is spelled ``name`` in ``records.jsonl``."""
    return {DISK_KEY: name}


@dataclass
class RecordExtra:
    """A record's ``extra``: everything measured or noted beside its metrics, one typed field per key.

    On disk (``to_json``/``from_json``) ``extra`` is a JSON object whose keys are these field names;
    a field that is None is absent there (the runner never writes a null). Keys this version does not
    declare (written by another version or by hand), and declared keys written as null, are kept in
    ``other`` as they were found, so a record reads back and writes out unchanged.
    """

    # --- the job (the same in every record of one job) ---
    # seconds inside codec calls for the whole job: every timed run (``--repeats``) of every encode
    # and decode, of all layers; warm-up excluded (bench.running.runner.job_codec_time)
    job_codec_s: float | None = None
    # seconds of the untimed warm-up encode and decode on small crops (the codec's start-up: model
    # loading), only in the records of the first job per process, codec and quality
    warmup_s: float | None = None
    # learned parameters per module with their "total" (bench.measuring.cost.parameter_summary of
    # Codec.parameter_counts); None for codecs without any (older records may hold a bare count)
    params: dict[str, int] | None = None
    # Codec.weights_info(): where the weights come from (source, file, sha256, ...)
    weights: dict[str, Any] | None = None
    # bytes on disk of the weights this job's quality loads (bench.measuring.cost.model_bytes)
    model_bytes: int | None = None
    # Codec.weights_id(quality): SHA-256 of the weights this job was coded with; a resumed run
    # refuses records made with other weights (bench.storage.store.check_weights)
    weights_id: str | None = None

    # --- this layer ---
    # codec-internal split of the encode call (Codec timings, e.g. network / entropy), seconds, the
    # median over the timed runs; {} when the codec reports none
    timings: dict[str, float] | None = None
    # the same for the decode call that gave this layer (layers 0..k of a scalable bitstream);
    # None when the codec does not split its decode
    decode_timings: dict[str, float] | None = None
    # with more than one timed run: {"repeats": n, "encode": spread, "decode": spread}
    # (bench.measuring.timing.spread: n, median, min, max, q1, q3 in seconds); None for a single run
    timing: dict[str, Any] | None = None
    # why ms_ssim_rgb is None (the layer is too small for MS-SSIM's five scales)
    ms_ssim_note: str | None = None
    # Codec.encode_diagnostics() of this layer (e.g. COMPASS's psnr_liff and psnr_bicubic)
    diagnostics: dict[str, float] | None = None

    # --- memory and child processes during the job's coding (bench.measuring.cost.ResourceProbe) ---
    peak_memory_mib: float | None = None  # peak memory growth, this process and its children
    peak_rss_delta_mib: float | None = None  # peak growth of this process's resident set
    rss_baseline_mib: float | None = None  # this process's resident set when the job began
    memory_samples: int | None = None  # how many times the probe sampled memory
    child_peak_rss_mib: float | None = None  # peak resident set of child processes (external encoders)
    child_cpu_s: float | None = None  # CPU seconds of child processes that ended during the job
    cuda_peak_mib: float | None = None  # peak CUDA memory allocated (CUDA devices only)

    # keys not declared above, and declared keys found as null, exactly as found
    other: dict[str, Any] = field(default_factory=dict)

    @property
    def repeats(self) -> int:
        """Timed runs of every codec call of the job (``timing.repeats``; 1 without ``timing``)."""
        return int((self.timing or {}).get("repeats", 1)) or 1

    def get(self, key: str) -> Any:
        """The value of the on-disk key ``key``: its field when declared, else what ``other`` kept
        (None when absent), so readers of older records name a key once, as it is spelled."""
        if key in EXTRA_FIELDS and getattr(self, key) is not None:
            return getattr(self, key)
        return self.other.get(key)

    def merged(self, values: Mapping[str, Any]) -> "RecordExtra":
        """A copy with the on-disk keys ``values`` (e.g. ``ResourceProbe.result()``) set."""
        added = RecordExtra.from_json(values)
        set_here = {name: getattr(added, name) for name in EXTRA_FIELDS if getattr(added, name) is not None}
        return replace(self, **set_here, other={**self.other, **added.other})

    def to_json(self) -> dict[str, Any]:
        """``extra`` as ``records.jsonl`` spells it."""
        return _extra_json({name: getattr(self, name) for name in EXTRA_FIELDS} | {"other": self.other})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RecordExtra":
        """``extra`` from its ``records.jsonl`` form (TypeError when it is not a JSON object)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"extra must be a JSON object, not {type(data).__name__}")
        declared = {key: value for key, value in data.items() if key in EXTRA_FIELDS and value is not None}
        return cls(**declared, other={key: value for key, value in data.items() if key not in declared})


# the keys of RecordExtra on disk, in field order
EXTRA_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(RecordExtra) if f.name != "other")


def _extra_json(values: dict[str, Any]) -> dict[str, Any]:
    """The on-disk form of RecordExtra's field values (``asdict`` or attributes): None fields left
    out, then the keys of ``other`` (a field that is set wins over a null kept there)."""
    out = {name: values[name] for name in EXTRA_FIELDS if values.get(name) is not None}
    for key, value in (values.get("other") or {}).items():
        out.setdefault(key, value)
    return out


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
    # YUV metrics (bench.measuring.metrics.psnr_yuv) through the float full-range matrix ``yuv_matrix``
    # (bench.measuring.ycbcr: "bt709" or "bt601"); None in records written before they existed
    psnr_y: float | None = field(default=None, metadata=disk("psnr-y"))
    psnr_u: float | None = field(default=None, metadata=disk("psnr-u"))
    psnr_v: float | None = field(default=None, metadata=disk("psnr-v"))
    psnr_yuv: float | None = field(default=None, metadata=disk("psnr-yuv"))  # (6·Y + U + V) / 8
    yuv_matrix: str | None = None
    # −10·log10(1 − ms_ssim_rgb) (bench.measuring.metrics.ms_ssim_db); the report derives it for older records
    ms_ssim_db: float | None = field(default=None, metadata=disk("ms-ssim-db"))
    # kMAC per pixel of this layer's own networks (Codec.complexity; None: the codec cannot count)
    encode_kmac_per_pixel: float | None = None
    decode_kmac_per_pixel: float | None = None
    # costs, weights, codec timings and notes (a plain dict is taken as its on-disk form)
    extra: RecordExtra = field(default_factory=RecordExtra)

    def __post_init__(self) -> None:
        if not isinstance(self.extra, RecordExtra):
            self.extra = RecordExtra.from_json({} if self.extra is None else self.extra)

    def to_json(self) -> dict[str, Any]:
        """The record as ``records.jsonl`` spells it."""
        data = asdict(self)
        data["extra"] = _extra_json(data["extra"])
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
