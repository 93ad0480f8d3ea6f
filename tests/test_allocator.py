"""The allocator tuning the experts ask for: applied on glibc, left alone elsewhere."""

from __future__ import annotations

import platform

import pytest

from iqa_eval.experts import allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning applies to glibc only")
def test_on_glibc_the_thresholds_are_raised_once(monkeypatch):
    monkeypatch.setattr(allocator, "_done", False)
    assert allocator.keep_freed_buffers() is True
    assert allocator.keep_freed_buffers() is True  # a second call changes nothing


def test_another_c_library_is_left_as_it_is(monkeypatch):
    monkeypatch.setattr(allocator, "_done", False)
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert allocator.keep_freed_buffers() is False
    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    assert allocator.keep_freed_buffers() is False
