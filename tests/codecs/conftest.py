"""Shared fixtures of the codec tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    # several jobs share two cores; OpenMP spinning with 2 threads is then ~10x slower.
    # Tests that compare thread counts set them explicitly inside the test.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
