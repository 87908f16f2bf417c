"""Bit-exact learned coding on CPU: run networks with a fixed number of intra-op threads.

torch's CPU convolutions (oneDNN/MKL) split their reductions by thread count, so the same weights
and input give slightly different floats at 1 and 2 threads. An entropy decoder must recompute
exactly the hyper-decoder output the encoder used, or rANS decodes garbage; so every learned codec
runs its networks with ``NETWORK_THREADS`` threads on CPU, whatever the caller set.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

NETWORK_THREADS = 1


@contextmanager
def fixed_network_threads(device: str) -> Iterator[None]:
    """Run the enclosed network calls with NETWORK_THREADS intra-op threads on CPU, then restore."""
    if not device.startswith("cpu"):
        yield
        return
    previous = torch.get_num_threads()
    if previous != NETWORK_THREADS:
        torch.set_num_threads(NETWORK_THREADS)
    try:
        yield
    finally:
        if previous != NETWORK_THREADS:
            torch.set_num_threads(previous)
