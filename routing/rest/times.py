"""Times as the usage API's clients write them: Unix seconds or milliseconds, or a date string."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime

from datasources.errors import BadInput

_MS_THRESHOLD = 100_000_000_000  # a Unix time this large is milliseconds (as seconds it is the year 5138)
_DATE_FORMATS = ("%Y/%m/%d", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%d %b %Y", "%b %d %Y", "%B %d, %Y")
_NUMBER = re.compile(r"\d+(\.\d+)?")


def parse_time(raw: str, name: str) -> datetime:
    """Unix seconds, Unix milliseconds, or a date string (ISO 8601, RFC 2822, 2024/07/02...); naive is UTC."""
    text = raw.strip()
    if _NUMBER.fullmatch(text):
        seconds = Decimal(text)
        if seconds >= _MS_THRESHOLD:
            seconds /= 1000
        try:
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=float(seconds))
        except OverflowError:
            raise BadInput(f"{raw!r} is out of range", field=name) from None
    moment = _parse_date(text)
    if moment is None:
        raise BadInput(
            f"{raw!r} is not Unix seconds, Unix milliseconds or a date "
            "(e.g. 1719878400, 1719878400000, 2024-07-02 or 2024-07-02T00:00:00Z)",
            field=name,
        )
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _parse_date(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None
