"""The live-stock bench's latency arithmetic: an event is late by the time since its value."""

from __future__ import annotations

import pytest

from stockgate.bench.live_stock import Watcher, latencies_ms, percentile


def test_latency_is_measured_from_the_first_sample_at_or_below_the_value() -> None:
    samples = [(10.0, 100), (10.01, 90), (10.02, 80), (10.03, 70), (10.2, 60)]
    watcher = Watcher(received=[(10.05, 90), (10.06, 75), (10.2, 60)])
    assert latencies_ms(samples, [watcher]) == pytest.approx([40.0, 30.0, 0.0])


def test_events_outside_the_sampling_window_are_left_out() -> None:
    samples = [(10.0, 100), (10.1, 90)]
    early, late = Watcher(received=[(9.9, 100)]), Watcher(received=[(11.0, 90)])
    assert latencies_ms(samples, [early, late]) == []
    assert latencies_ms([], [late]) == []


def test_percentile_picks_from_the_sorted_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 100.0
    assert percentile(values, 0.5) == 51.0
