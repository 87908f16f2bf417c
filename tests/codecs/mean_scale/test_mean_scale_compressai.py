"""mean-scale@compressai: CompressAI's published mbt2018-mean read from torch.hub's cache, never
downloaded; decoded images equal what CompressAI's own zoo model decodes from the same file."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.codec import BitstreamError, CodecError
from bench.codecs.mean_scale import published
from bench.determinism import NETWORK_THREADS
from bench.registry import create_codec
from bench.zoo import MissingWeightsError, WeightsHashError
from tests.codecs.mean_scale.test_mean_scale import make_image
from tests.codecs.published_fixtures import write_compressai_zoo_file

# quality: (N, M) as in CompressAI's zoo (cfgs["mbt2018-mean"]); old (<1.2) key names for one file
FILES = {3: (128, 192, True), 6: (192, 320, False)}


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> tuple[Path, dict[int, tuple[Path, torch.nn.Module]]]:
    """A TORCH_HOME whose hub cache holds zoo-style files for qualities 3 and 6."""
    home = tmp_path_factory.mktemp("torch-home")
    files = {q: write_compressai_zoo_file(home / "hub" / "checkpoints", q, n, m, seed=q, old_names=old)
             for q, (n, m, old) in FILES.items()}
    return home, files


@pytest.fixture()
def cached(hub, monkeypatch):
    """TORCH_HOME pointing at the cache; CompressAI's URL table naming the random files (their
    names carry their own SHA-256, as the real ones do)."""
    from compressai.zoo import image

    home, files = hub
    monkeypatch.setenv("TORCH_HOME", str(home))
    table = image.model_urls["mbt2018-mean"]["mse"]
    for quality, (path, _) in files.items():
        monkeypatch.setitem(table, quality, f"https://compressai.s3.amazonaws.com/models/v1/{path.name}")
    return files


@pytest.fixture()
def no_network(monkeypatch):
    """Any download (torch.hub's or a direct one) fails the test."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_names_and_cache_folder_are_compressai_zoo_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert published.qualities() == (1, 2, 3, 4, 5, 6, 7, 8)
    assert published.file_name(1) == "mbt2018-mean-1-e522738d.pth.tar"
    assert published.file_name(8) == "mbt2018-mean-8-8089ae3e.pth.tar"
    assert published.cache_dir() == tmp_path / "hub" / "checkpoints"
    assert create_codec("mean-scale@compressai").info.default_qualities == (1, 2, 3, 4, 5, 6, 7, 8)
    assert create_codec("mean-scale").info.default_qualities == (1, 2, 3, 4)


def test_empty_cache_is_unavailable_and_nothing_is_downloaded(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    codec = create_codec("mean-scale@compressai")
    status = codec.availability()
    assert not status.available
    assert str(tmp_path / "hub" / "checkpoints") in status.reason
    assert "mbt2018-mean-1-e522738d.pth.tar" in status.reason and "mbt2018-mean-8-8089ae3e.pth.tar" in status.reason
    assert codec.weights_info() == {} and codec.parameter_counts() == {}
    with pytest.raises(MissingWeightsError, match="mbt2018-mean-4-6dba02a3.pth.tar"):
        codec.encode([make_image(32, 48)], 4)
    assert codec.weights_status() == (f"CompressAI zoo ({tmp_path / 'hub' / 'checkpoints'})", [])


def _strings(data: bytes) -> tuple[int, bytes, bytes]:
    quality = data[5]
    y_len, z_len = struct.unpack_from(">II", data, 14)
    return quality, data[22 : 22 + y_len], data[22 + y_len : 22 + y_len + z_len]


@pytest.mark.parametrize("quality", sorted(FILES))
def test_decodes_what_compressai_zoo_model_decodes(cached, no_network, quality):
    codec = create_codec("mean-scale@compressai")
    image = make_image(32, 48, seed=quality)
    encoded = codec.encode([image], quality)
    decoded = create_codec("mean-scale@compressai").decode(encoded.data)[0]  # fresh codec

    # CompressAI's own zoo entry point, reading the same cached file (present: no download)
    from compressai.zoo import mbt2018_mean

    reference = mbt2018_mean(quality, metric="mse", pretrained=True, progress=False).eval()
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0
    x = F.pad(x, (0, 64 - 48, 0, 64 - 32), mode="replicate")
    with torch.no_grad():
        out = reference.compress(x)
        x_hat = reference.decompress(out["strings"], out["shape"])["x_hat"]
    expected = x_hat[0, :, :32, :48].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert _strings(encoded.data) == (quality, out["strings"][0][0], out["strings"][1][0])
    assert np.array_equal(decoded, expected)
    # the source model (before saving) decodes the same
    with torch.no_grad():
        source = cached[quality][1]
        again = source.decompress(source.compress(x)["strings"], out["shape"])["x_hat"]
    assert torch.equal(again, x_hat)


def test_partial_cache_weights_info_and_qualities(cached, no_network):
    codec = create_codec("mean-scale@compressai")
    status = codec.availability()
    assert status.available and "only qualities [3, 6]" in status.reason
    assert "mbt2018-mean-1-e522738d.pth.tar" in status.reason
    info = codec.weights_info()
    paths = [cached[3][0], cached[6][0]]
    assert info["source"] == "compressai" and info["qualities"] == "3 6"
    assert info["file"].split() == [str(p) for p in paths]
    assert info["sha256"].split() == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    counts = codec.parameter_counts()
    assert counts["total"] == sum(p.numel() for p in cached[3][1].parameters())
    with pytest.raises(CodecError, match="quality must be one of"):
        codec.encode([make_image(32, 48)], 9)
    with pytest.raises(MissingWeightsError, match="mbt2018-mean-5-d504e8eb.pth.tar"):
        codec.encode([make_image(32, 48)], 5)
    assert codec.weights_status()[1] == [3, 6]


def test_weights_id_is_the_cached_files_sha256(cached, no_network):
    codec, simulcast = create_codec("mean-scale@compressai"), create_codec("simulcast:mean-scale@compressai")
    for quality, (path, _) in cached.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert codec.weights_id(quality) == simulcast.weights_id(quality) == digest
    assert codec.weights_id(5) is None and codec._models == {}  # not cached here; nothing loaded


def test_bitstreams_of_other_weights_and_sources_are_refused(cached, no_network, tmp_path, monkeypatch):
    codec = create_codec("mean-scale@compressai")
    data = codec.encode([make_image(32, 48)], 3).data
    # the bench zoo (here: an empty one) cannot decode these, and says why
    monkeypatch.setenv("BENCH_WEIGHTS", str(tmp_path))
    with pytest.raises(BitstreamError, match="names quality 6, not one of"):
        create_codec("mean-scale").decode(codec.encode([make_image(32, 48)], 6).data)
    with pytest.raises(FileNotFoundError, match="mean-scale-q3-"):
        create_codec("mean-scale").decode(data)
    # a quality-6 header on quality-3 strings: the weights tag does not match the q6 file
    body = bytearray(data[:-4])
    body[5] = 6
    forged = bytes(body) + struct.pack(">I", zlib.crc32(bytes(body)))
    with pytest.raises(BitstreamError, match="not with mbt2018-mean-6-"):
        create_codec("mean-scale@compressai").decode(forged)


def test_damaged_cached_file_is_refused(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = published.cached_path(2)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"truncated download")
    codec = create_codec("mean-scale@compressai")
    assert codec.weights_status()[1] == [2]
    with pytest.raises(WeightsHashError, match="damaged"):
        codec.encode([make_image(32, 48)], 2)


def test_thread_pinning_applies(cached, no_network):
    codec = create_codec("mean-scale@compressai")
    image = make_image(32, 48, seed=9)
    torch.set_num_threads(2)
    first = codec.encode([image], 3).data
    torch.set_num_threads(1)
    assert codec.encode([image], 3).data == first and NETWORK_THREADS == 1
