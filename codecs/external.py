"""What every codec that drives an external program shares (SHM, VTM, ffmpeg, ...).

* ``ToolLog``: what one encode or decode ran (command lines, the configuration files it wrote, the
  tools' output), kept by the codec as ``last_encode``/``last_decode`` so a report can show it.
* ``run_tool``: one subprocess with a timeout, no stdin unless given, and errors that name the
  binary, what it was doing and the last lines it printed.
* ``find_executable`` / ``folder_availability``: binaries looked up in a folder the user names (a
  spec's ``@FOLDER`` or an environment variable), never in a path a file chose; availability says
  what is missing and how to get it.
* ``tool_version``: the version a binary prints, for fingerprints and manifests.

YUV files in and out are ``bench.codecs.yuv``; Annex-B streams ``bench.codecs.annexb``.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench.codec import Availability, CodecError

logger = logging.getLogger(__name__)

TAIL_LINES = 12  # output lines an error quotes: enough to see the tool's own message


@dataclass
class ToolLog:
    """What one encode or decode ran: shell-quoted command lines (relative to ``workdir``), the
    configuration files it wrote, the tools' output, and what the codec parsed from it."""

    workdir: str
    commands: list[str] = field(default_factory=list)
    configs: dict[str, str] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    pictures: list[Any] = field(default_factory=list)
    version: str | None = None


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: bytes
    text: str  # stdout and stderr decoded, for logs and messages
    seconds: float


def last_lines(text: str, count: int = TAIL_LINES) -> str:
    """The last ``count`` non-empty lines of ``text``, for error messages."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:])


def failure_message(binary: str | Path, what: str, result: ToolResult) -> str:
    """``EncoderApp (encoder) failed with status 1; its last lines: ...``."""
    tail = last_lines(result.text)
    return f"{Path(binary).name} ({what}) failed with status {result.returncode}" + (
        f"; its last lines:\n{tail}" if tail else " and printed nothing"
    )


def run_tool(
    args: Sequence[str], *, cwd: Path | None = None, timeout: float, what: str, log: ToolLog | None = None,
    input: bytes | None = None,
) -> ToolResult:
    """Run ``args`` (``args[0]`` the binary) and return its status and output; a CodecError naming
    the binary when it cannot start or runs past ``timeout`` seconds (then it is killed). A non-zero
    status is returned, not raised: the caller knows whether that is a bad input or a broken tool."""
    binary = Path(args[0]).name
    command = shlex.join(args)
    if log is not None:
        log.commands.append(command)
    logger.debug("%s: (cd %s && %s)", what, cwd, command)
    began = time.perf_counter()
    try:
        result = subprocess.run(list(args), cwd=cwd, input=input, capture_output=True, timeout=timeout, check=False,
                                stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as expired:
        printed = (expired.stdout or b"").decode(errors="replace") + (expired.stderr or b"").decode(errors="replace")
        tail = last_lines(printed)
        raise CodecError(f"{binary} ({what}) ran past {timeout:.0f} s and was stopped: {command}"
                         + (f"; its last lines:\n{tail}" if tail else "")) from None
    except OSError as error:
        raise CodecError(f"could not run {binary} ({what}): {error}") from error
    text = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    if log is not None:
        log.logs.append(text)
    return ToolResult(result.returncode, result.stdout, text, time.perf_counter() - began)


def find_executable(folder: Path, names: Sequence[str]) -> Path | None:
    """The first of ``names`` that is an executable file in ``folder`` or ``folder/bin``."""
    for directory in (folder, folder / "bin"):
        for name in names:
            path = directory / name
            if path.is_file() and os.access(path, os.X_OK):
                return path
    return None


def _not_executable(folder: Path, names: Sequence[str]) -> Path | None:
    """A file of one of ``names`` that is there but cannot be run (no execute permission)."""
    for directory in (folder, folder / "bin"):
        for name in names:
            path = directory / name
            if path.is_file() and not os.access(path, os.X_OK):
                return path
    return None


def configured_folder(source: str | None, env_var: str) -> Path | None:
    """The binaries' folder, absolute: a spec's ``@FOLDER`` or ``$env_var``. Resolved against the
    working directory when read, since the tools run in a temporary folder where a relative path
    would name nothing."""
    folder = source or os.environ.get(env_var)
    return Path(folder).expanduser().absolute() if folder else None


def folder_availability(
    folder: Path | None, binaries: Sequence[Sequence[str]], software: str, how: str
) -> Availability:
    """Whether ``folder`` holds an executable of each group of ``binaries`` (alternative names of one
    program); the reason names what is missing, then ``how`` to get it."""
    if folder is None:
        return Availability.missing(f"{software} binaries not configured: {how}")
    if not folder.is_dir():
        return Availability.missing(f"{software} folder {folder} does not exist: {how}")
    missing = [names for names in binaries if find_executable(folder, names) is None]
    blocked = [path for path in (_not_executable(folder, names) for names in missing) if path is not None]
    if blocked:
        files = " and ".join(str(path) for path in blocked)
        verb = "is" if len(blocked) == 1 else "are"
        return Availability.missing(f"{files} {verb} not executable (chmod +x, and check that the file "
                                    f"system is not mounted noexec): {how}")
    if missing:
        names = " and ".join(" or ".join(group) for group in missing)
        return Availability.missing(f"no executable {names} in {folder} or {folder}/bin: {how}")
    return Availability.ok()


def tool_version(binary: Path, args: Sequence[str], pattern: str | re.Pattern[str], timeout: float = 30) -> str | None:
    """The first group of ``pattern`` in what ``binary args`` prints; None when it prints no match."""
    try:
        result = subprocess.run([str(binary), *args], capture_output=True, timeout=timeout, check=False,
                                stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace"))
    return match.group(1) if match else None


def check_frame(height: int = 48, width: int = 64) -> np.ndarray:
    """A synthetic natural-looking picture: colour gradients, a wave and mild noise (fixed seed)."""
    rng = np.random.default_rng(12)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    wave = 127.5 + 100 * np.sin(2 * np.pi * x / width) * np.cos(2 * np.pi * y / height)
    image = np.stack([255 * x / (width - 1), 255 * y / (height - 1), wave], axis=-1)
    return np.clip(np.rint(image + rng.normal(0, 4, image.shape)), 0, 255).astype(np.uint8)
