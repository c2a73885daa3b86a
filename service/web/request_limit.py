"""The request limit of the routes that take credentials, as a route decorator.

``@request_limited`` goes right under the route decorator, above the schema validation, so a
flood is refused before any body is parsed. Each decorated endpoint has its own budget per
client address (``AUTH_REQUESTS_PER_MINUTE``, see ``service.limits``); routes without the
decorator never touch the limit store, so the items routes pay nothing for it. A CORS
preflight never reaches a route handler (Quart answers ``OPTIONS`` itself), so it spends
nothing either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from quart import request

from service.services import services
from service.web.requests import client_address

P = ParamSpec("P")
R = TypeVar("R")

#: Set on each decorated handler, so tests can list the limited endpoints.
LIMITED_ATTRIBUTE = "request_limited"


def request_limited(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Refuse the request with 429 and ``Retry-After`` while its address is over the limit."""

    @wraps(handler)
    async def limited(*args: P.args, **kwargs: P.kwargs) -> R:
        await services().limits.admit_request(str(request.endpoint), client_address())
        return await handler(*args, **kwargs)

    setattr(limited, LIMITED_ATTRIBUTE, True)
    return limited
