"""What coding costs besides time: peak memory, model size on disk, parameter counts.

Peak memory is measured around the codec calls of a job by ``ResourceProbe``:

* CPU: the resident set size (RSS) of this process above what it was when the probe started, plus
  the RSS of the child processes it runs (external encoders such as ffmpeg or the SHM binaries).
  ``ru_maxrss`` alone cannot do this: it is a high-water mark over the whole process life, so after
  the first job it rarely moves. A thread samples ``/proc`` every few milliseconds instead, and the
  kernel's exact high-water marks are used whenever they did rise during the probe. Before the
  baseline is read, freed heap memory is handed back to the OS (glibc ``malloc_trim``) so that a
  job's allocations show up as growth rather than as reuse of memory a previous job left behind.
  Model weights loaded before the probe (by the warm-up) are not part of the delta: they are the
  model size, reported on their own. Limits: a peak shorter than the sampling interval is seen only
  when it sets a new high-water mark; RSS counts shared-library pages (most of an ffmpeg process's
  few hundred MiB are its libraries).
* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (tensors only,
  weights included, the caching allocator's reserve excluded).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

MIB = 2**20
SAMPLE_INTERVAL_S = 0.005

try:
    import resource
except ImportError:  # Windows: no getrusage; sampling /proc is unavailable there too
    resource = None  # type: ignore[assignment]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_PROC = Path("/proc/self")


def _libc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc.malloc_trim if libc is not None and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_malloc_trim = _libc_trim()


def _rss_of(stat_path: Path) -> int | None:
    """Resident bytes from a ``/proc/<pid>/statm`` file (None when the process is gone)."""
    try:
        return int(stat_path.read_bytes().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def _maxrss_bytes(who: int) -> int | None:
    if resource is None:
        return None
    value = resource.getrusage(who).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024  # Linux reports KiB, macOS bytes


def _children_cpu_s() -> float | None:
    if resource is None:
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class ResourceProbe:
    """``with ResourceProbe(device) as probe: ...`` then ``probe.result()`` (a dict for ``extra``)."""

    def __init__(self, device: str = "cpu", interval: float = SAMPLE_INTERVAL_S) -> None:
        self.device = device
        self.interval = interval
        self._sampling = _PROC.joinpath("statm").exists()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._baseline = 0
        self._peak_own = 0
        self._peak_children = 0
        self._peak_total = 0
        self._samples = 0
        self._tasks: list[Path] = []
        self._result: dict[str, Any] = {}
        self._cuda: Any = None

    # --- sampling ---------------------------------------------------------------------------------
    def _children_rss(self) -> int:
        total = 0
        for task in self._tasks:
            try:
                pids = task.joinpath("children").read_text().split()
            except OSError:
                continue
            for pid in pids:
                total += _rss_of(Path("/proc", pid, "statm")) or 0
        return total

    def _sample(self) -> None:
        own = _rss_of(_PROC / "statm") or 0
        children = self._children_rss()
        self._peak_own = max(self._peak_own, own)
        self._peak_children = max(self._peak_children, children)
        self._peak_total = max(self._peak_total, own + children)
        self._samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    # --- context manager --------------------------------------------------------------------------
    def __enter__(self) -> ResourceProbe:
        if _malloc_trim is not None:
            _malloc_trim(0)
        self._cuda = self._cuda_device()
        if self._cuda is not None:
            import torch

            torch.cuda.synchronize(self._cuda)
            torch.cuda.reset_peak_memory_stats(self._cuda)
        self._self_hw = _maxrss_bytes(resource.RUSAGE_SELF) if resource else None
        self._child_hw = _maxrss_bytes(resource.RUSAGE_CHILDREN) if resource else None
        self._child_cpu = _children_cpu_s()
        if self._sampling:
            try:  # child processes are listed per thread of this process
                self._tasks = [task for task in _PROC.joinpath("task").iterdir() if (task / "children").exists()]
            except OSError:
                self._tasks = []
            self._baseline = _rss_of(_PROC / "statm") or 0
            self._peak_own = self._peak_total = self._baseline
            self._thread = threading.Thread(target=self._loop, name="bench-memory-probe", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._sample()
        self._result = self._summarise()

    def _cuda_device(self) -> Any:
        if not self.device.startswith("cuda"):
            return None
        import torch

        return torch.device(self.device) if torch.cuda.is_available() else None

    def _summarise(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        own_peak = self._peak_own
        child_peak = self._peak_children
        self_hw = _maxrss_bytes(resource.RUSAGE_SELF) if resource else None
        child_hw = _maxrss_bytes(resource.RUSAGE_CHILDREN) if resource else None
        # A high-water mark that rose during the probe was reached inside it: it is exact.
        if self_hw is not None and self._self_hw is not None and self_hw > self._self_hw:
            own_peak = max(own_peak, self_hw)
        if child_hw is not None and self._child_hw is not None and child_hw > self._child_hw:
            child_peak = max(child_peak, child_hw)
        if self._sampling:
            own_delta = max(0, own_peak - self._baseline)
            total = max(self._peak_total - self._baseline, own_delta, child_peak)
            out["peak_memory_mib"] = total / MIB
            out["peak_rss_delta_mib"] = own_delta / MIB
            out["rss_baseline_mib"] = self._baseline / MIB
            out["memory_samples"] = self._samples
        if child_peak:
            out["child_peak_rss_mib"] = child_peak / MIB
        cpu = _children_cpu_s()
        if cpu is not None and self._child_cpu is not None and cpu > self._child_cpu:
            out["child_cpu_s"] = cpu - self._child_cpu
        if self._cuda is not None:
            import torch

            torch.cuda.synchronize(self._cuda)
            out["cuda_peak_mib"] = torch.cuda.max_memory_allocated(self._cuda) / MIB
        return out

    def result(self) -> dict[str, Any]:
        return dict(self._result)


# --- model size and parameters ------------------------------------------------------------------

_ENTRY = re.compile(r"(?:q(\d+):\s*)?([^,\s]+)")


def _weight_entries(info: dict[str, str]) -> list[tuple[int | None, str]]:
    """(quality or None, file name) for every weights file ``weights_info`` names.

    Codecs describe their files as ``"a.pth b.pth"`` with a parallel ``qualities`` field, or as
    ``"q1: a.pth, q2: b.pth"``; any key ending in ``file`` counts (e.g. COMPASS's ``bl_file``).
    """
    entries: list[tuple[int | None, str]] = []
    qualities = str(info.get("qualities", "")).split()
    for key, value in info.items():
        if not (key == "file" or key.endswith("_file")) or not value:
            continue
        found = [(int(q) if q else None, name) for q, name in _ENTRY.findall(str(value))]
        if len(qualities) == len(found) and all(q is None for q, _ in found):
            found = [(int(q), name) for q, (_, name) in zip(qualities, found, strict=True)]
        entries.extend(found)
    return entries


def _resolve(name: str) -> Path | None:
    path = Path(name)
    if path.is_file():
        return path
    try:
        from bench import zoo

        candidate = zoo.zoo_root() / path.name
    except ImportError:
        return None
    return candidate if candidate.is_file() else None


def model_bytes(info: dict[str, str], quality: int | None = None) -> int | None:
    """Bytes on disk of the weights a codec uses at ``quality`` (all its files when they are not per
    quality); None when the codec has no weights or a named file cannot be found."""
    entries = _weight_entries(info)
    if quality is not None and any(q == quality for q, _ in entries):
        entries = [(q, name) for q, name in entries if q == quality or q is None]
    paths = [_resolve(name) for _, name in entries]
    if not paths or any(path is None for path in paths):
        return None
    return sum(path.stat().st_size for path in paths if path is not None)


def parameter_summary(counts: dict[str, int]) -> dict[str, int] | None:
    """Per-module parameter counts with a ``total`` (added when the codec did not give one)."""
    if not counts:
        return None
    summary = {name: int(value) for name, value in counts.items()}
    summary.setdefault("total", sum(v for k, v in summary.items() if k != "total"))
    return summary
