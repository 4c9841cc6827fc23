"""Backoff for calls into the cluster (see :mod:`rctl_agent.client`)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter; every effect is injectable for tests.

    The n-th consecutive failure (n >= 1) waits
    ``min(max_delay, base_delay * multiplier**(n-1)) * (1 - jitter * random())``
    seconds, i.e. a delay in ``[d * (1 - jitter), d]``.

    :param base_delay: delay after the first failure, seconds (> 0).
    :param max_delay: cap on any delay, seconds (>= base_delay).
    :param multiplier: growth per failure (>= 1).
    :param jitter: fraction of the delay that is randomised, in [0, 1).
    :param sleep: how to wait; tests pass a fake.  None (the default) is a
        real wait that ends early when another call of the same client
        succeeds, so a thread deep in backoff follows the cluster back at once.
    :param clock: monotonic seconds (``time.monotonic``).
    :param random: uniform [0, 1) source (``random.random``).
    """

    base_delay: float = 0.1
    max_delay: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.5
    sleep: Callable[[float], None] | None = field(default=None, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        if not self.base_delay > 0:
            raise ValueError("retry policy: base_delay must be > 0")
        if self.max_delay < self.base_delay:
            raise ValueError("retry policy: max_delay must be >= base_delay")
        if self.multiplier < 1:
            raise ValueError("retry policy: multiplier must be >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("retry policy: jitter must be in [0, 1)")

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (>= 1)."""
        exponent = min(max(failures, 1) - 1, 64)
        ceiling = min(self.max_delay, self.base_delay * self.multiplier**exponent)
        return ceiling * (1 - self.jitter * self.random())
