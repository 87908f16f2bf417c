"""The ``vtm`` marker: tests that run the VTM binaries (``VTM_DIR``); select or leave them out with
``-m vtm`` / ``-m "not vtm"``. Without VTM they skip with the reason (``helpers.needs_vtm``)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vtm: needs the VTM binaries (VTM_DIR)")
