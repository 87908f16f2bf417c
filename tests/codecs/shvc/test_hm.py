"""hm: single-layer HEVC through SHM's encoder and decoder. Options and refusals always; real encodes
when the SHM binaries are installed (``SHM_DIR``)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench import container
from bench.codec import BitstreamError, CodecError
from bench.codecs import shvc
from bench.codecs import yuv as _yuv
from bench.codecs.shvc import LayerGeometry, ShmRun, ShvcCodec
from bench.codecs.shvc.hm import HmCodec
from bench.codecs.simulcast import SimulcastCodec
from bench.registry import codec_family, create_codec
from tests.codecs.shvc.test_shvc import make_image, psnr, resize

AVAILABILITY = HmCodec().availability()
needs_shm = pytest.mark.skipif(not AVAILABILITY.available, reason=f"SHM unavailable: {AVAILABILITY.reason}")
HEADER = 5  # format/layer-count byte + one width/height pair


# ---------------------------------------------------------------------------------------------
# Registration, options, refusals (no binaries needed)


def test_registered_as_single_layer() -> None:
    codec = create_codec("hm:chroma=420@/nowhere")
    assert isinstance(codec, HmCodec)
    assert not codec.info.scalable and codec.info.max_layers == 1
    assert codec.info.default_qualities == (22, 27, 32, 37, 42, 47)
    assert codec.spec == "hm:chroma=420@/nowhere"
    assert codec_family("hm") == "hm" and codec.info.family is None  # its own family, not shvc's
    assert not codec.info.anchors_every_family and codec.info.report_role == "scalable"


def test_options_are_shvcs_colour_options() -> None:
    assert HmCodec().options == shvc.ShvcOptions("444", 8, 0, None)
    assert HmCodec(arg="chroma=420+bits=10").options == shvc.ShvcOptions("420", 10, 0, None)


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("delta=2", "unknown hm option 'delta'; known: chroma, bits"),
        ("offsets=0/2", "unknown hm option 'offsets'"),
        ("ctc", "hm option 'ctc' is not key=value"),  # presets are SHVC recipes
        ("chroma=444+bits=10", "no scalable profile"),
    ],
)
def test_shvc_only_options_make_hm_unavailable(arg: str, message: str) -> None:
    status = HmCodec(arg=arg, source="/nowhere").availability()
    assert not status.available and message in status.reason
    with pytest.raises(CodecError, match=message.split(";")[0]):
        _ = HmCodec(arg=arg).options


def test_unavailable_without_shm_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(shvc.ENV_VAR, raising=False)
    status = HmCodec().availability()
    assert not status.available and "\n" not in status.reason
    assert "export SHM_DIR=" in status.reason and "hm@/path/to/SHM/bin" in status.reason
    assert "bench shm build" in status.reason
    simulcast = create_codec("simulcast:hm")
    assert not simulcast.availability().available
    assert simulcast.availability().reason.startswith("inner codec hm is unavailable: SHM binaries not configured")
    with pytest.raises(CodecError, match="hm is unavailable"):
        HmCodec().encode([make_image(16, 16)], 32)


def test_refuses_layers_and_multi_layer_bitstreams_before_running_anything() -> None:
    codec = HmCodec(source="/nowhere")
    with pytest.raises(CodecError, match="exactly one image, got 2 layers"):
        codec.encode([make_image(16, 16), make_image(32, 32)], 32)
    two_layers = shvc.pack_header(_yuv.YuvFormat(), [LayerGeometry(48, 32), LayerGeometry(96, 64)])
    with pytest.raises(BitstreamError, match="names 2 layers"):
        codec.decode(two_layers + b"\x00\x00\x01\x40\x01")
    one_layer = shvc.pack_header(_yuv.YuvFormat(), [LayerGeometry(48, 32)])
    with pytest.raises(CodecError, match="cannot decode 2"):
        codec.decode(one_layer + b"\x00\x00\x01\x40\x01", 2)
    with pytest.raises(BitstreamError, match="start code"):
        codec.decode(one_layer + b"\x01\x02\x03")


def test_simulcast_hm_delegates() -> None:
    codec = create_codec("simulcast:hm:chroma=420@/nowhere")
    assert isinstance(codec, SimulcastCodec) and codec.info.scalable
    assert isinstance(codec.inner, HmCodec) and codec.inner.spec == "hm:chroma=420@/nowhere"
    assert codec.info.default_qualities == (22, 27, 32, 37, 42, 47)
    assert codec.coding_threads(8) == 1  # SHM is single-threaded


# ---------------------------------------------------------------------------------------------
# Real SHM runs (SHM_DIR)


def encoder_reconstruction(run: ShmRun, image: np.ndarray, fmt: _yuv.YuvFormat, workdir: Path) -> tuple[bytes, bytes]:
    """Rerun the encoder command of ``run`` on ``image``: (its bitstream, its reconstruction YUV)."""
    for name, text in run.configs.items():
        (workdir / name).write_text(text)
    (workdir / "layer0.yuv").write_bytes(_yuv.planes_to_bytes(_yuv.rgb_to_planes(_yuv.pad_even(image), fmt), fmt))
    subprocess.run(shlex.split(run.commands[0]), cwd=workdir, check=True, capture_output=True, timeout=120)
    return (workdir / "str.bit").read_bytes(), (workdir / "rec0.yuv").read_bytes()


@pytest.mark.shm
@needs_shm
@pytest.mark.parametrize(("arg", "size"), [("", (64, 96)), ("chroma=420", (43, 65)), ("chroma=420+bits=10", (48, 64))])
def test_decoder_output_is_the_encoders_reconstruction(arg: str, size: tuple[int, int], tmp_path: Path) -> None:
    image = make_image(*size, seed=4)
    codec = create_codec("hm" + (f":{arg}" if arg else ""))
    encoded = codec.encode([image], 30)
    fmt = codec.options.yuv
    # Bits come from the real bytes: the header plus every NAL unit (VPS/SPS/PPS, slice, SEI, EOB).
    stream = encoded.data[HEADER:]
    units = shvc.parse_nal_units(stream)
    assert encoded.layer_bytes == [len(encoded.data)] == [HEADER + sum(u.size for u in units)]
    assert [u.nal_type for u in units][:3] == [32, 33, 34] and {u.layer_id for u in units} == {0}
    assert shvc.log_bits_per_layer(stream, 1) == [codec.last_encode.pictures[0].bits]
    assert codec.last_encode.pictures[0].qp == 30
    # The same encoder command, rerun here, gives the same stream; its reconstruction file is what
    # the decoder writes, byte for byte, and what decode() returns as RGB.
    again, reconstruction = encoder_reconstruction(codec.last_encode, image, fmt, tmp_path)
    assert again == stream
    _, decoder = codec.binaries()
    decoded_yuv = codec._decode_layers(decoder, stream, 0, tmp_path, ShmRun(str(tmp_path)), BitstreamError)[0]
    assert decoded_yuv == reconstruction
    geo = LayerGeometry(width=size[1], height=size[0])
    planes = _yuv.bytes_to_planes(reconstruction, geo.even_height, geo.even_width, fmt)
    expected = _yuv.planes_to_rgb(planes, fmt)[: size[0], : size[1]]
    decoded = codec.decode(encoded.data)
    assert len(decoded) == 1 and np.array_equal(decoded[0], expected)
    assert 30 < psnr(image, decoded[0]) < 50


@pytest.mark.shm
@needs_shm
def test_encode_checks_the_decoder_against_the_reconstruction(monkeypatch: pytest.MonkeyPatch) -> None:
    def damaged(self, decoder, stream, top, workdir, run, error):  # noqa: ANN001 - a stand-in
        return [b"\x00" * len(raw) for raw in original(self, decoder, stream, top, workdir, run, error)]

    original = ShvcCodec._decode_layers
    monkeypatch.setattr(ShvcCodec, "_decode_layers", damaged)
    with pytest.raises(CodecError, match="differs from the encoder's reconstruction"):
        create_codec("hm").encode([make_image(32, 48)], 32)


@pytest.mark.shm
@needs_shm
def test_is_shvc_with_one_layer_and_plain_hevc(tmp_path: Path) -> None:
    image = make_image(64, 96, seed=6)
    hm = create_codec("hm").encode([image], 27)
    assert hm.data == create_codec("shvc").encode([image], 27).data  # the same SHM run, one layer
    coarse = create_codec("hm").encode([image], 37)
    assert len(coarse.data) < len(hm.data)
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed: the single-layer HEVC cross-check needs its decoder")
    # A plain HEVC decoder (ffmpeg's) decodes the stream to the pictures SHM's decoder gives.
    (tmp_path / "hm.bit").write_bytes(hm.data[HEADER:])
    subprocess.run(["ffmpeg", "-v", "error", "-i", "hm.bit", "-f", "rawvideo", "-pix_fmt", "yuv444p", "ff.yuv"],
                   cwd=tmp_path, check=True, timeout=60)
    fmt = _yuv.YuvFormat("444", 8)
    planes = _yuv.bytes_to_planes((tmp_path / "ff.yuv").read_bytes(), 64, 96, fmt)
    assert np.array_equal(_yuv.planes_to_rgb(planes, fmt), create_codec("hm").decode(hm.data)[0])


@pytest.mark.shm
@needs_shm
def test_simulcast_hm_sums_independent_codings() -> None:
    top = make_image(64, 96, seed=7)
    layers = [resize(top, 48, 32), top]
    codec = create_codec("simulcast:hm")
    encoded = codec.encode(layers, 32)
    alone = [create_codec("hm").encode([layer], 32).data for layer in layers]
    # Per layer: varint length + CRC32 + hm's own bitstream; the container header goes to layer 0.
    expected = [len(a) + (1 if len(a) < 128 else 2) + 4 for a in alone]
    expected[0] += container.HEADER_SIZE
    assert encoded.layer_bytes == expected and sum(expected) == len(encoded.data)
    decoded = codec.decode(encoded.data)
    assert [d.shape for d in decoded] == [im.shape for im in layers]
    for layer, data, rec in zip(layers, alone, decoded):
        assert np.array_equal(rec, create_codec("hm").decode(data)[0])
        assert psnr(layer, rec) > 30
    assert np.array_equal(codec.decode(encoded.data, 1)[0], decoded[0])
