"""When to try a temporarily failed email again: exponential backoff with jitter, bounded.

The n-th retry waits ``MAIL_RETRY_DELAY * 2**(n-1)`` seconds, at most an hour, give or take
a fifth so that messages that failed together do not all come back together (the herd a
recovering server would meet). After ``MAIL_MAX_ATTEMPTS`` attempts the message is given up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: The longest wait between two attempts, seconds.
MAX_DELAY = 3600.0
#: The share of a wait that is random, either way.
JITTER = 0.2


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    first_delay: float

    def gives_up_after(self, attempts: int) -> bool:
        """Whether a message that failed its ``attempts``-th attempt is to be given up."""
        return attempts >= self.max_attempts

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th attempt failed (1 for the first)."""
        base = min(MAX_DELAY, self.first_delay * 2.0 ** max(0, attempts - 1))
        return base * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 (not a secret)
