"""What a codec's exact output depends on besides bench's own code (``Codec.fingerprint``).

``bench check`` compares a codec's bytes exactly only when its fingerprint is the baseline's; these
are the pieces codecs build theirs from.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Mapping

NUMERIC_PACKAGES = ("torch", "compressai", "numpy")


def cpu_model() -> str:
    """The CPU's model name (float results of networks on CPU depend on its instruction set)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags_digest() -> str:
    """A short hash of the CPU's feature flags: hosts that report the same model name (a virtual
    "Intel(R) Xeon(R) Processor") can still expose different instruction sets, and SIMD code paths
    (x265's assembly, oneDNN's kernels) give different bits on different sets."""
    import hashlib

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                return hashlib.sha256(flags.encode()).hexdigest()[:12]
    except OSError:
        pass
    return platform.machine()


def numeric_stack(weights: Mapping[str, str] | None = None) -> dict[str, str]:
    """Versions of torch, CompressAI and numpy, the CPU, and the weights' SHA-256 when there are weights."""
    versions = {}
    for package in NUMERIC_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    versions["cpu"] = cpu_model()
    if weights:
        versions["weights"] = weights.get("sha256", "")
    return versions


def first_line(command: list[str]) -> str | None:
    """The first line ``command`` prints (e.g. a version banner), or None when it cannot run."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.splitlines()[0].strip() if result.stdout else None
