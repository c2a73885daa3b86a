"""Operational endpoints: liveness and readiness probes."""

from __future__ import annotations

from pydantic import BaseModel
from quart import Blueprint
from quart_schema import tag_blueprint, validate_response

from service.db import deadline
from service.errors import ServiceUnavailable
from service.services import services
from service.web.openapi import problems

#: Seconds the readiness probe gives the database (a pooled connection and its ping), whatever
#: ``DB_STATEMENT_TIMEOUT`` is: a platform's health check gives up after a few seconds.
READY_TIMEOUT = 0.5

bp = Blueprint("ops", __name__)
tag_blueprint(bp, ["operations"])


class Health(BaseModel):
    """The probe's verdict."""

    status: str


@bp.get("/healthz")
@validate_response(Health)
async def healthz() -> Health:
    """Liveness: the process is up and answering. Touches nothing else."""
    return Health(status="ok")


@bp.get("/readyz")
@validate_response(Health)
@problems(503)
async def readyz() -> Health:
    """Readiness: the database answers a query within 0.5 s.

    `503` with `Retry-After` when it does not.
    """
    try:
        with deadline.budget(READY_TIMEOUT):
            await services().db.ping()
    except Exception:
        raise ServiceUnavailable("The database is not reachable.") from None
    return Health(status="ready")
