"""Fixtures of the COMPASS tests (2 CPU cores shared: one torch thread)."""

from __future__ import annotations

import pytest

from bench.codecs.compass.model import CompassModel
from tests.codecs.compass.helpers import make_tiny_model


@pytest.fixture(scope="session")
def tiny_model() -> CompassModel:
    return make_tiny_model()
