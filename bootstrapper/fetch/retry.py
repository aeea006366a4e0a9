"""The one retry loop of every HTTP exchange: downloads, the manifest and the webhook.

Whether a failure is worth another attempt is the error's own `retryable` (see `errors.FetchError`),
so no caller keeps a list of statuses. Waits grow exponentially from `first_wait` with up to 25 %
jitter, capped; a server's Retry-After wins up to its own cap, so a busy server sets the pace but can
never park us for hours. The loop stops after `attempts`, or once `deadline` seconds have passed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bootstrapper.errors import FetchError, RetryableStatusError
from bootstrapper.fetch.model import FetchOptions

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
#: Called before each wait with the attempt that failed (from 1), its error and the wait in seconds.
OnRetry = Callable[[int, FetchError, float], None]


@dataclass(frozen=True)
class RetryPolicy:
    first_wait: float
    cap: float
    retry_after_cap: float
    #: Attempts in all, the first included; None: until the deadline.
    attempts: int | None = None
    #: Seconds from the first attempt after which no new attempt starts; None: no deadline.
    deadline: float | None = None

    @classmethod
    def of(
        cls,
        options: FetchOptions,
        first_wait: float,
        *,
        attempts: int | None = None,
        deadline: float | None = None,
    ) -> RetryPolicy:
        """The caps from the settings, the start and the limit from the caller."""
        return cls(first_wait, options.backoff_cap, options.retry_after_cap, attempts, deadline)


def backoff(attempt: int, policy: RetryPolicy, error: BaseException | None, rng: random.Random) -> float:
    """The wait after failed attempt number `attempt` (from 1)."""
    wait = min(policy.cap, policy.first_wait * 2 ** (attempt - 1))
    wait = min(policy.cap, wait + rng.uniform(0, wait / 4))
    if isinstance(error, RetryableStatusError) and error.retry_after is not None:
        wait = max(wait, min(error.retry_after, policy.retry_after_cap))
    return float(wait)


async def with_retries(
    once: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    on_retry: OnRetry | None = None,
) -> T:
    """`once()` until it succeeds; a final or last error propagates as it was raised.

    Callers that give up on a retryable error tell it apart by `exc.retryable` and say so in their
    own words (a deadline, a count).
    """
    rng = rng or random.Random()  # noqa: S311 -- jitter, not a secret
    end = None if policy.deadline is None else clock() + policy.deadline
    attempt = 0
    while True:
        attempt += 1
        try:
            return await once()
        except FetchError as exc:
            if not exc.retryable or (policy.attempts is not None and attempt >= policy.attempts):
                raise
            wait = backoff(attempt, policy, exc, rng)
            if end is not None:
                left = end - clock()
                if left <= 0:
                    raise
                wait = min(wait, left)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            await sleep(wait)
