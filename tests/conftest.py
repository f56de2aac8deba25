"""Shared test helpers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("NO_COLOR", "1")
# The project cache (parsed files, the analysed grammar: intento._cache) of this test session is
# its own, never the user's ~/.cache/intento; subprocesses (the CLI tests) inherit it.
os.environ.setdefault("INTENTO_CACHE_DIR", tempfile.mkdtemp(prefix="intento-test-cache-"))


@pytest.fixture
def root() -> Path:
    return ROOT
