"""The bound on inference requests in progress: lowered while it refuses requests to what the
server answers within the latency target, raised back once nothing is refused, never moved by
traffic under it."""

from __future__ import annotations

from service.http.concurrency_limit import FEWEST, STALE_S, WINDOW_S, ConcurrencyLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _window(bound: ConcurrencyLimit, clock: Clock, answered: int, refused: int) -> None:
    """One window of `answered` and `refused` requests spread over WINDOW_S."""
    events = [bound.answered] * answered + [bound.refused] * refused
    for i, event in enumerate(events):
        clock.now += WINDOW_S / len(events)
        if i == len(events) - 1:
            clock.now += 1e-9
        event()


def _after(*windows: tuple[int, int, int]) -> int:
    """The bound (ceiling 128, target 25 ms) after runs of (count, answered, refused) windows."""
    clock = Clock()
    bound = ConcurrencyLimit(128, 0.025, clock=clock)
    for count, answered, refused in windows:
        for _ in range(count):
            _window(bound, clock, answered=answered, refused=refused)
    return bound.limit


def test_overload_brings_the_bound_to_what_is_answered_within_the_target() -> None:
    # 600 answered and 700 refused a second: 600/s × 25 ms.
    assert _after((20, 60, 70)) == 15


def test_without_refusals_the_bound_goes_back_to_its_ceiling() -> None:
    assert _after((20, 60, 70), (20, 60, 0)) == 128


def test_traffic_under_the_ceiling_never_lowers_it() -> None:
    # 8 clients of large requests: slow answers (40 ms each in progress), none refused.
    assert _after((50, 20, 0)) == 128


def test_a_server_that_answers_nothing_keeps_only_the_fewest() -> None:
    assert _after((20, 0, 50)) == FEWEST


def test_a_window_after_a_pause_does_not_move_the_bound() -> None:
    clock = Clock()
    bound = ConcurrencyLimit(128, 0.025, clock=clock)
    clock.now += 10 * STALE_S  # idle, then a burst refused at once
    bound.refused()
    assert bound.limit == 128


def test_without_a_target_the_bound_is_fixed() -> None:
    clock = Clock()
    bound = ConcurrencyLimit(32, None, clock=clock)
    for _ in range(20):
        _window(bound, clock, answered=10, refused=100)
    assert bound.limit == 32
