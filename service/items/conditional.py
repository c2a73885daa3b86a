"""Conditional requests on items (RFC 9110 section 13): ``ETag``, ``If-Match``, ``If-None-Match``.

An item's entity tag is its ``version`` as a strong tag (``"3"``). The headers are parsed by
werkzeug (``parse_etags``: lists, ``*``, weak tags, quoting); only the mapping between tags and
versions is ours. A tag that is not a version this service can have written (not ASCII digits,
or beyond the column's range) names no version: it matches nothing, so it is a 412 on a write
and a full answer on a read, never an error of its own.
"""

from __future__ import annotations

from werkzeug.datastructures import ETags
from werkzeug.http import parse_etags, quote_etag

#: ``items.version`` is a 32-bit integer; a larger number cannot be a current version.
MAX_VERSION = 2**31 - 1


def etag(version: int) -> str:
    """The strong entity tag of a resource version."""
    return f'"{version}"'


def version_of(tag: str) -> int | None:
    """The version an (unquoted) entity tag names, or None."""
    if not (tag.isascii() and tag.isdigit()) or len(tag) > len(str(MAX_VERSION)):
        return None
    version = int(tag)
    return version if version <= MAX_VERSION else None


def if_none_match(header: str | None, version: int) -> bool:
    """Whether ``If-None-Match`` names this version or ``*`` (weak comparison, RFC 9110 13.1.2)."""
    if header is None:  # most requests: nothing to parse
        return False
    return parse_etags(header).contains_weak(str(version))


def if_match_versions(header: str | None) -> list[int] | None:
    """The versions an ``If-Match`` header accepts (RFC 9110 section 13.1.1).

    None means no precondition (no header, or ``*``, which any existing resource meets).
    Weak tags never match: ``If-Match`` uses the strong comparison.
    """
    if header is None:
        return None
    tags: ETags = parse_etags(header.strip())
    if tags.star_tag:
        return None
    # werkzeug also reads unquoted tags (``1``, ``"1"x``); RFC 9110 section 8.8.3 has every
    # entity tag quoted, so only tags that stand quoted as a list element count.
    elements = {element.strip() for element in header.split(",")}
    versions = (
        version_of(tag) for tag in tags.as_set(include_weak=False) if quote_etag(tag) in elements
    )
    return sorted(version for version in versions if version is not None)
