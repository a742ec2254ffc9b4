"""Retry schedule: exponential, capped, full jitter, Retry-After as a floor."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.upload.retry import RetryPolicy


def policy(base: float = 5.0, cap: float = 3600.0, seed: int = 0) -> RetryPolicy:
    return RetryPolicy(base_seconds=base, max_seconds=cap, rng=random.Random(seed))


def test_ceiling_doubles_from_base_and_stops_at_max() -> None:
    p = policy(base=5, cap=100)
    assert [p.ceiling(n) for n in range(1, 8)] == [5, 10, 20, 40, 80, 100, 100]


def test_ceiling_for_a_huge_attempt_count_is_the_max() -> None:
    assert policy(base=5, cap=3600).ceiling(10_000) == 3600
    assert policy(base=0.5, cap=30).ceiling(2**40) == 30


def test_ceiling_before_any_failure_is_the_base() -> None:
    assert policy(base=5, cap=100).ceiling(0) == 5


@given(
    attempts=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.01, max_value=60),
    cap=st.floats(min_value=1, max_value=86_400),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_is_full_jitter_below_the_ceiling(
    attempts: int, base: float, cap: float, seed: int
) -> None:
    p = policy(base=base, cap=cap, seed=seed)
    ceiling = p.ceiling(attempts)
    assert ceiling <= max(cap, base)
    assert ceiling >= min(base, cap)
    for _ in range(5):
        assert 0.0 <= p.delay(attempts) <= ceiling


@given(attempts=st.integers(min_value=1, max_value=40))
def test_ceiling_never_decreases(attempts: int) -> None:
    p = policy(base=1, cap=1000)
    assert p.ceiling(attempts) <= p.ceiling(attempts + 1)


def test_delay_really_is_jittered_over_the_whole_range() -> None:
    p = policy(base=10, cap=10, seed=42)
    delays = [p.delay(1) for _ in range(2000)]
    assert min(delays) < 1.0  # full jitter reaches down to zero ...
    assert max(delays) > 9.0  # ... and up to the ceiling
    assert len(set(delays)) > 1900


@given(
    attempts=st.integers(min_value=1, max_value=60),
    retry_after=st.floats(min_value=0, max_value=1_000_000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_retry_after_is_a_floor(attempts: int, retry_after: float, seed: int) -> None:
    cap = 3600.0
    p = policy(base=5, cap=cap, seed=seed)
    d = p.delay(attempts, retry_after=retry_after)
    assert d >= min(retry_after, cap)
    assert d <= max(p.ceiling(attempts), min(retry_after, cap))


def test_retry_after_longer_than_max_is_capped() -> None:
    assert policy(base=5, cap=600).delay(1, retry_after=86_400) == 600


def test_retry_after_shorter_than_the_jitter_does_not_shorten_it() -> None:
    a = policy(base=100, cap=100, seed=7)
    b = policy(base=100, cap=100, seed=7)
    jittered = a.delay(1)
    assert jittered > 1  # seed 7 gives a draw well above the Retry-After below
    assert b.delay(1, retry_after=1) == jittered


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_same_seed_same_schedule(seed: int) -> None:
    a, b = policy(seed=seed), policy(seed=seed)
    assert [a.delay(n) for n in range(1, 20)] == [b.delay(n) for n in range(1, 20)]


def test_different_seeds_differ() -> None:
    a, b = policy(seed=1), policy(seed=2)
    assert [a.delay(n) for n in range(1, 10)] != [b.delay(n) for n in range(1, 10)]


def test_policies_compare_by_schedule_not_by_rng() -> None:
    assert policy(seed=1) == policy(seed=2)
    assert policy(base=1) != policy(base=2)
