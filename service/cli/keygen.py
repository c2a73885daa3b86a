"""``service keygen``: a token signing key, written so that only its owner can read it."""

# ruff: noqa: PLC0415 (the imports inside the commands are this module's design)

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from service.security import keys


#: ``--algorithm`` values of ``keygen``; EdDSA is the older name of Ed25519 (RFC 9864).
KEYGEN_ALGORITHMS: dict[str, keys.AsymmetricAlgorithm] = {
    "RS256": "RS256",
    "ES256": "ES256",
    "Ed25519": "Ed25519",
    "EdDSA": "Ed25519",
}


@click.command("keygen")
@click.option(
    "--algorithm",
    required=True,
    type=click.Choice(list(KEYGEN_ALGORITHMS)),
    help="JWT_ALGORITHM the key is for (RS256 keys get 3072 bits).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the key to this new file (mode 0600) instead of standard output.",
)
def keygen_command(algorithm: str, out: Path | None) -> None:
    """Make a token signing key: PEM for JWT_PRIVATE_KEY(_FILE); its kid goes to stderr.

    Also the first step of a key rotation (docs/keys.md). An existing file is
    never overwritten.
    """
    from service.security import keys

    key = keys.generate_private_key(KEYGEN_ALGORITHMS[algorithm])
    pem = keys.private_key_pem(key)
    if out is None:
        click.echo(pem, nl=False)
    else:
        _write_private(out, pem)
    click.echo(f"kid: {keys.key_id(key)}", err=True)


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only; refuse to replace a file (maybe a live key)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; remove it or choose another --out") from None
    except OSError as error:
        raise click.ClickException(f"cannot create {path}: {error.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(text)
