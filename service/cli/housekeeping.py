"""``service purge``: rows that are no longer needed, deleted in short transactions."""

# ruff: noqa: PLC0415 (the imports inside the commands are this module's design)

from __future__ import annotations

import click

from service.cli.common import checked_settings, command_services


@click.command("purge")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=100_000),
    default=1000,
    show_default=True,
    help="Rows deleted per transaction.",
)
def purge_command(batch_size: int) -> None:
    """Delete sessions that ended more than PURGE_AFTER ago and expired idempotency keys.

    Safe while the service serves (short transactions of --batch-size rows) and idempotent:
    run it daily (docs/deployment.md). Prints the rows deleted of each kind.
    """
    import asyncio

    from service.cli.purge import purge

    async def run() -> dict[str, int]:
        async with command_services(checked_settings()) as services:
            return await purge(services, batch_size=batch_size)

    for name, count in asyncio.run(run()).items():
        click.echo(f"{name}: {count} deleted")
