"""One image into a bench bitstream file and back: ``bench encode`` and ``bench decode`` as functions.

```python
from bench.tools.coding import decode_file, encode_image

encoded = encode_image("kodim05.png", "out.bin", codec="compass", quality=2, scales="1.5,2")
print(encoded.layer_bytes, encoded.cumulative_bpp, encoded.file_bytes)
decoded = decode_file("out.bin", "out", layers=2)  # writes out_L0.png, out_L1.png
print(decoded.paths, decoded.sizes)
```

``encode_image`` builds the image's pyramid (``bench.pyramid``), codes it and writes the envelope
(``bench.storage.envelope``): a JSON header (the codec's portable spec, quality, scales, anchoring, layer
sizes and bytes) and the codec's bytes. ``decode_file`` checks everything the header claims before
a codec is built from it (layer count, sizes against ``max_pixels``, a spec naming a registered
codec), decodes the first ``layers`` layers and writes them as PNGs. Both check their arguments and
the output paths before any coding time is spent. Errors are ``bench.errors.BenchError``s
(``UsageError`` for arguments and paths, ``EnvelopeError`` for a damaged file, the codec's own);
nothing here prints or exits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench.errors import EnvelopeError, UsageError
from bench.running.config import check_device

__all__ = ["DecodeResult", "EncodeResult", "decode_file", "encode_image", "layer_paths"]


@dataclass(frozen=True)
class EncodeResult:
    """What ``encode_image`` wrote: the file, the codec spec it coded with, and per layer (base
    first) its size and bytes."""

    path: Path
    codec: str
    quality: int
    sizes: tuple[tuple[int, int], ...]  # (height, width) of every layer
    layer_bytes: tuple[int, ...]  # the codec's bytes of every layer
    file_bytes: int  # the whole file (header included)

    @property
    def cumulative_bpp(self) -> tuple[float, ...]:
        """Bits per pixel of layer k counting every byte needed to decode it (layers 0..k), over
        layer k's pixels."""
        return tuple(sum(self.layer_bytes[: k + 1]) * 8 / (height * width)
                     for k, (height, width) in enumerate(self.sizes))


@dataclass(frozen=True)
class DecodeResult:
    """What ``decode_file`` wrote: one PNG per decoded layer (base first), their sizes, the codec
    spec it decoded with and how many layers the file holds; ``layers`` are the decoded pictures
    (H×W×3 uint8 arrays)."""

    paths: tuple[Path, ...]
    sizes: tuple[tuple[int, int], ...]  # (height, width) of every decoded layer
    codec: str
    total_layers: int
    layers: list[Any] = field(default_factory=list, compare=False, repr=False)


def layer_paths(prefix: str | os.PathLike[str], count: int) -> list[Path]:
    """The files ``decode_file`` writes: ``PREFIX_L0.png`` … ``PREFIX_L<count-1>.png``."""
    return [Path(f"{os.fspath(prefix)}_L{k}.png") for k in range(count)]


def encode_image(image: str | os.PathLike[str], output: str | os.PathLike[str], codec: str, quality: int,
                 scales: str | None = None, anchor: str = "top", device: str = "cpu") -> EncodeResult:
    """Encode ``image`` with the codec spec ``codec`` at ``quality`` into the bench bitstream file
    ``output``. ``scales``: inter-layer ratios as ``bench encode --scales`` takes them (``"1.5,2"``;
    scalable codecs only; None: one layer, the image itself); ``anchor``: ``top`` or ``base:F``."""
    from bench.images import load_rgb
    from bench.pyramid import Anchoring, build_pyramid, format_scales, parse_scales
    from bench.registry import create_codec, portable_spec
    from bench.storage.envelope import pack

    image, output = Path(image), Path(output)
    check_device(device)
    coder = create_codec(codec, device=device)
    status = coder.availability()
    if not status.available:
        raise UsageError(f"codec {codec} is unavailable: {status.reason}")
    _check_writable(output)
    if _same_file(output, image):
        raise UsageError(f"the output {output} is the input image; give another file name")
    source = load_rgb(image)
    ratios = parse_scales(scales) if scales is not None else ()
    if ratios and not coder.info.scalable:
        raise UsageError(f"{codec} is a single-layer codec; --scales needs a scalable codec")
    anchoring = Anchoring.parse(anchor)
    layers = build_pyramid(source, ratios, anchoring, name=str(image)) if ratios else [source]
    encoded = coder.encode(layers, quality)
    # a folder in the spec (shvc@/opt/SHM/bin) stays on this machine: a file never names binaries
    header = {"codec": portable_spec(coder.spec), "quality": quality,
              "scales": format_scales(ratios) if ratios else "", "anchor": str(anchoring),
              "sizes": [list(layer.shape[:2]) for layer in layers],
              "layer_bytes": encoded.layer_bytes}
    layered = encoded.layer_bytes if coder.info.prefix_decodable else None
    _write(output, lambda path: path.write_bytes(pack(header, encoded.data, layered)))
    return EncodeResult(output, coder.spec, quality, tuple((int(layer.shape[0]), int(layer.shape[1]))
                                                           for layer in layers),
                        tuple(encoded.layer_bytes), output.stat().st_size)


def decode_file(bitstream: str | os.PathLike[str], prefix: str | os.PathLike[str], layers: int | None = None,
                device: str = "cpu", max_pixels: int | None = None, codec: str | None = None) -> DecodeResult:
    """Decode the first ``layers`` layers (None: all) of the bench bitstream file ``bitstream`` into
    ``PREFIX_L<k>.png`` files. ``max_pixels``: the largest layer the header may claim (None:
    ``bench.images.DEFAULT_MAX_PIXELS``), checked before any codec loads; ``codec``: decode with this
    spec instead of the file's (the same codec and options, your ``@SOURCE``, e.g. a folder of
    binaries; a file never names one)."""
    from PIL import Image

    from bench.images import DEFAULT_MAX_PIXELS
    from bench.registry import CodecSpec, create_codec, file_spec
    from bench.storage.envelope import unpack

    bitstream = Path(bitstream)
    check_device(device)
    if bitstream.is_dir():
        raise UsageError(f"{bitstream} is a folder, not a bitstream file")
    if not bitstream.is_file():
        raise UsageError(f"no such bitstream file: {bitstream}")
    _check_writable(layer_paths(prefix, 1)[0])
    if layers is not None and layers < 1:
        raise UsageError(f"--layers must be at least 1, got {layers}")
    max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if max_pixels < 1:
        raise UsageError(f"--max-pixels must be at least 1, got {max_pixels}")
    envelope = unpack(bitstream.read_bytes(), layers)
    sizes = envelope.header["sizes"]  # unpack checked: a non-empty list of [height, width] > 0
    total = len(sizes)
    wanted = total if layers is None else layers
    if not 1 <= wanted <= total:
        raise UsageError(f"--layers must be between 1 and {total} for this file")
    outputs = layer_paths(prefix, wanted)
    for path in outputs:
        if _same_file(path, bitstream):
            raise UsageError(f"the output {path} is the input bitstream; give another prefix")
    # Everything taken from the header is checked before a codec is built from it: no layer is larger
    # than max_pixels (first: it needs no codec module loaded, so a bomb fails at once), and the spec
    # names a registered codec and, at most, named weights (never a folder or binary: those come
    # from the user's environment or ``codec``).
    for k, (height, width) in enumerate(sizes[:wanted]):
        if height * width > max_pixels:
            raise EnvelopeError(f"the file's layer {k} is {width}x{height} = {height * width} pixels, more than "
                                f"--max-pixels {max_pixels}; raise it to decode this file")
    spec = file_spec(envelope.header["codec"])
    chosen = envelope.header["codec"]
    if codec is not None:  # the user's spec: the file's codec and options, the user's @SOURCE
        mine = CodecSpec.parse(codec)
        if (mine.name, mine.arg) != (spec.name, spec.arg):
            named = spec.name + (f":{spec.arg}" if spec.arg else "")
            raise UsageError(f"--codec {codec} is not the file's codec {named}; give {named}[@SOURCE]")
        chosen = codec
    coder = create_codec(chosen, device=device)
    status = coder.availability()
    if not status.available:
        raise UsageError(f"codec {coder.spec} needed for this file is unavailable: {status.reason}")
    limit = coder.info.max_layers
    if limit is not None and total > limit:
        raise EnvelopeError(f"the file's header names {total} layers; {coder.spec} codes at most {limit}")
    _limit_pixels(coder, max_pixels)
    decoded = coder.decode(envelope.payload, wanted)
    for k, layer in enumerate(decoded):
        if list(layer.shape[:2]) != list(sizes[k]):
            raise EnvelopeError(f"the file's header says layer {k} is {sizes[k][1]}x{sizes[k][0]}, but its "
                                f"bitstream decodes to {layer.shape[1]}x{layer.shape[0]}: the file is corrupted")
    written = list(zip(outputs, decoded))
    for path, layer in written:
        _write(path, lambda target, image=layer: Image.fromarray(image).save(target))
    return DecodeResult(tuple(path for path, _ in written),
                        tuple((int(layer.shape[0]), int(layer.shape[1])) for _, layer in written),
                        coder.spec, total, [layer for _, layer in written])


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths are one file (a hard link or a symlink included), when both exist."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): writing it cannot overwrite the other
        return False


def _check_writable(path: Path) -> None:
    """Refuse an output path that cannot be written before any coding time is spent on it."""
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: folder {path.parent} does not exist")


def _write(path: Path, write: Callable[[Path], Any]) -> None:
    try:
        write(path)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from None


def _limit_pixels(codec: Any, max_pixels: int) -> None:
    """Give a codec that bounds what its decoder allocates (``max_pixels``: the learned codecs) the
    user's limit, and the codec a wrapper (simulcast) decodes its layers with too."""
    if hasattr(codec, "max_pixels"):
        codec.max_pixels = max_pixels
    if getattr(codec, "inner_spec", None):
        _limit_pixels(codec.inner, max_pixels)
