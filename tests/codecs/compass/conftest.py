"""Fixtures of the COMPASS tests (2 CPU cores shared: one torch thread)."""

from __future__ import annotations

import pytest
import torch

from bench.codecs.compass.model import CompassModel
from tests.codecs.compass.helpers import make_tiny_model


@pytest.fixture(autouse=True)
def one_thread():
    # several jobs share two cores; OpenMP spinning with 2 threads is then ~10x slower
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model() -> CompassModel:
    return make_tiny_model()
