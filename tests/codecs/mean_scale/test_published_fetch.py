"""``bench weights fetch compressai`` against an HTTP server on loopback (never the internet): files
whose SHA-256 starts with the prefix in their name land in torch.hub's cache, others are refused and
leave nothing behind."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path
from typing import Iterator

import pytest

from bench.codecs.mean_scale import published
from bench.zoo import WeightsError, WeightsHashError

GOOD = b"CompressAI mbt2018-mean stand-in, quality 3\n" * 50
DAMAGED = b"CompressAI mbt2018-mean stand-in, quality 4, bytes flipped in transit\n" * 50


class Server:
    """A threaded ``http.server`` on 127.0.0.1 serving ``root``; counts the GET requests per path."""

    def __init__(self, root: Path) -> None:
        requests: dict[str, int] = {}

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - the server passes them
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                requests[self.path] = requests.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, *args) -> None:  # noqa: ANN002 - keep test output quiet
                pass

        self.requests = requests
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    image = published._zoo_image()  # CompressAI imported the way bench imports it
    served = tmp_path / "served"
    served.mkdir()
    good_name = f"mbt2018-mean-3-{hashlib.sha256(GOOD).hexdigest()[:8]}.pth.tar"
    # the damaged file keeps the name (and so the prefix) of the good one: its bytes do not match it
    damaged_name = f"mbt2018-mean-4-{hashlib.sha256(GOOD).hexdigest()[:8]}.pth.tar"
    (served / "good").mkdir()
    (served / "good" / good_name).write_bytes(GOOD)
    (served / "bad").mkdir()
    (served / "bad" / damaged_name).write_bytes(DAMAGED)
    running = Server(served)
    running.thread.start()
    table = image.model_urls["mbt2018-mean"]["mse"]
    monkeypatch.setitem(table, 3, f"{running.base}/good/{good_name}")
    monkeypatch.setitem(table, 4, f"{running.base}/bad/{damaged_name}")
    monkeypatch.setitem(table, 5, f"{running.base}/missing/mbt2018-mean-5-0123abcd.pth.tar")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    try:
        yield running
    finally:
        running.httpd.shutdown()
        running.httpd.server_close()


def cache_listing() -> list[str]:
    folder = published.cache_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_downloads_into_torch_hubs_cache_with_the_hash_checked(server: Server, tmp_path: Path) -> None:
    said: list[str] = []
    [result] = published.fetch([3], progress=False, say=said.append)
    assert published.cache_dir() == tmp_path / "torch" / "hub" / "checkpoints"
    assert result.status == "downloaded" and result.path == published.cached_path(3)
    assert result.path.read_bytes() == GOOD and result.sha256 == hashlib.sha256(GOOD).hexdigest()
    assert cache_listing() == [published.file_name(3)]
    assert said == [f"q3: downloading {published.url(3)}"]
    # a second fetch finds the intact file and asks the server for nothing
    [again] = published.fetch([3], progress=False, say=said.append)
    assert again.status == "present" and sum(server.requests.values()) == 1
    assert published.present_qualities() == [3]


def test_a_damaged_download_is_refused_and_not_left_in_the_cache(server: Server) -> None:
    with pytest.raises(WeightsHashError, match="not the one its name promises.*it was not written to"):
        published.fetch([4], progress=False, say=lambda _: None)
    assert server.requests == {f"/bad/{published.file_name(4)}": 1}
    assert cache_listing() == []  # neither the file nor a .partial left over
    assert 4 not in published.present_qualities()


def test_a_damaged_cached_file_is_replaced_by_a_good_download(server: Server) -> None:
    path = published.cached_path(3)
    path.parent.mkdir(parents=True)
    path.write_bytes(GOOD[:-1] + b"?")
    said: list[str] = []
    [result] = published.fetch([3], progress=False, say=said.append)
    assert result.status == "downloaded" and path.read_bytes() == GOOD
    assert said[0] == f"q3: {path} is damaged; downloading it again"


def test_unknown_quality_and_unreachable_files(server: Server) -> None:
    with pytest.raises(WeightsError, match="at qualities .* not 9"):
        published.fetch([3, 9], progress=False, say=lambda _: None)
    assert server.requests == {}  # refused before anything was downloaded
    with pytest.raises(WeightsError, match="could not download .*missing.*404"):
        published.fetch([5], progress=False, say=lambda _: None)
    assert cache_listing() == []


def test_the_command_line_fetches_and_reports(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import main

    assert main(["weights", "fetch", "compressai", "--qualities", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"q3: downloaded {published.cached_path(3)}" in out
    assert "SHA-256 " + hashlib.sha256(GOOD).hexdigest()[:8] in out
    assert main(["weights", "fetch", "compressai", "--qualities", "4", "--no-progress"]) == 2
    assert "not the one its name promises" in capsys.readouterr().err
    assert main(["weights", "fetch", "compressai", "--qualities", "three"]) == 2


def test_a_cached_file_that_would_run_code_is_refused_unrun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.pickle_payload import hostile_zoo_file

    marker = tmp_path / "ran"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    # named with its own hash prefix, as a download that passed fetch's check would be
    evil = hostile_zoo_file(published.cache_dir(), "mbt2018-mean", 6, marker)
    evil = evil.rename(evil.with_name(evil.name.replace("-q6-", "-6-")))
    table = published._zoo_image().model_urls["mbt2018-mean"]["mse"]
    monkeypatch.setitem(table, 6, f"https://example.invalid/{evil.name}")
    assert published.cached_path(6) == evil
    with pytest.raises(WeightsError) as caught:
        published.load_mean_scale(6)
    assert str(caught.value).startswith(f"{evil} was not loaded: it asks for the Python object exec")
    assert "weights_only" not in str(caught.value)
    assert not marker.exists()


def test_fetch_weights_takes_a_typed_config_and_prints_nothing(server: Server,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from bench.codecs.mean_scale.fetch import FetchConfig, fetch_weights

    said: list[str] = []
    result = fetch_weights(FetchConfig("compressai", "3", progress=False), say=said.append)
    [fetched] = result.fetched
    assert (fetched.quality, fetched.status, fetched.path) == (3, "downloaded", published.cached_path(3))
    assert fetched.sha256 == hashlib.sha256(GOOD).hexdigest() and fetched.path.read_bytes() == GOOD
    assert result.cache_dir == published.cache_dir() and result.reader == "mean-scale@compressai"
    assert len(said) == 1 and said[0].startswith("q3: downloading http://127.0.0.1")
    again = fetch_weights(FetchConfig(qualities=[3, 3], progress=False))  # no say: silent
    assert [(f.quality, f.status) for f in again.fetched] == [(3, "present")]
    assert capsys.readouterr() == ("", "")


def test_fetch_config_checks_its_source_and_qualities() -> None:
    from bench.codecs.mean_scale.fetch import FetchConfig
    from bench.errors import UsageError

    assert FetchConfig(qualities="1,3,1").qualities == (1, 3)
    assert FetchConfig(qualities=(4, 2)).qualities == (4, 2) and FetchConfig().qualities is None
    for bad, message in (({"source": "elsewhere"}, "unknown weights source"), ({"qualities": "x"}, "integers"),
                         ({"qualities": ","}, "names no quality"), ({"qualities": []}, "names no quality")):
        with pytest.raises(UsageError, match=message):
            FetchConfig(**bad)
