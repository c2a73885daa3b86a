"""``service openapi``: the OpenAPI document, exported without configuration or database."""

# ruff: noqa: PLC0415 (the imports inside the commands are this module's design)

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.command("openapi")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the document to this file instead of standard output.",
)
def openapi_command(out: Path | None) -> None:
    """Export the OpenAPI document (what /openapi.json serves) as JSON.

    Needs no configuration, no database and no secret: the document depends on no setting.
    """
    import json

    text = json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


#: A database URL that is never connected to: engines connect on first use only.
_NO_DATABASE = "postgresql://openapi.invalid/unused"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as ``/openapi.json`` serves it, from an app on default settings.

    The environment is ignored (``default_settings``), so a half-configured shell still exports
    the same document.
    """
    import asyncio

    from service.app import create_app
    from service.config import default_settings
    from service.services import services

    settings = default_settings(
        app_env="testing", database_url=_NO_DATABASE, bcrypt_rounds=4, log_level="WARNING"
    )
    app = create_app(settings)

    async def fetch() -> dict[str, Any]:
        response = await app.test_client().get("/openapi.json")
        document: dict[str, Any] = await response.get_json()
        await services(app).close()
        return document

    return asyncio.run(fetch())
