"""Process-wide performance settings: applied on glibc Linux, and switchable off."""

import sys

import pytest

from quicklearn.core.runtime import tune_cpu_allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_allocator_tuning_applies_and_can_be_turned_off(monkeypatch):
    assert tune_cpu_allocator() is True
    assert tune_cpu_allocator() is True  # idempotent
    monkeypatch.setenv("QUICKLEARN_TUNE_MALLOC", "0")
    assert tune_cpu_allocator() is False
