"""When to try a transiently failed upload again.

Exponential backoff with full jitter, capped. The schedule comes from the
`backoff` package's `expo` generator, so the curve is the well-known one; the jitter
takes an injected `random.Random` so tests are deterministic. A server's Retry-After
is a floor: we never come back sooner than it asked.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 5.0
    max_seconds: float = 3600.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def ceiling(self, attempts: int) -> float:
        """The un-jittered wait after the `attempts`-th failed attempt (1-based)."""
        import backoff  # here, not at the top: it imports asyncio, which no upload needs

        gen = backoff.expo(base=2, factor=self.base_seconds, max_value=self.max_seconds)
        next(gen)  # expo yields None first, to accept the initial .send()
        value: float = 0.0
        for _ in range(max(1, min(attempts, 64))):
            value = next(gen)
        return float(value)

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `attempts`-th failure: full jitter, at least Retry-After."""
        jittered = self.rng.uniform(0.0, self.ceiling(attempts))
        if retry_after is not None:
            return max(jittered, min(retry_after, self.max_seconds))
        return jittered
