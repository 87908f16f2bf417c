"""``--scales 1`` and plain-decimal scales on the command line (issue #31 item 3, issue #27 7a)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--codecs", "x265,simulcast:x265", "--scales", "1"],
         "--scales 1 (a single-layer run of the full picture) is for single-layer codecs; "
         "scalable codec(s) simulcast:x265 code at least two layers"),
        (["--codecs", "x265", "--scales", "1_5"], "decimal numbers (e.g. 1.5,2), got '1_5'"),
        (["--codecs", "x265", "--scales", "1", "--anchor", "base:0.25"], "would code a smaller one"),
    ],
)
def test_scales_errors_are_one_line_before_any_job(capsys, tmp_path: Path, make_image_folder, extra,
                                                    message) -> None:
    folder = make_image_folder(1, 24, 32)
    status = main(["run", "--dataset", str(folder), "--out", str(tmp_path / "run"), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "records.jsonl").exists()
