"""Time-zone handling for the Graph emulator: Windows and IANA names, Graph's date-time format.

Graph's ``dateTimeTimeZone`` carries a wall-clock ``dateTime`` without offset plus a zone name
that may be a Windows name ("Pacific Standard Time") or an IANA name ("America/Los_Angeles").
Responses use 7 fractional digits (``2026-01-05T09:00:00.0000000``). The Windows to IANA
mapping below is the CLDR ``windowsZones`` "001" (territory-neutral) entry for each name.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "WINDOWS_TO_IANA",
    "UnknownTimeZone",
    "format_graph_datetime",
    "format_utc_timestamp",
    "parse_graph_datetime",
    "parse_query_datetime",
    "resolve_zone",
]

WINDOWS_TO_IANA: dict[str, str] = {
    "UTC": "UTC",
    "Dateline Standard Time": "Etc/GMT+12",
    "UTC-11": "Etc/GMT+11",
    "Samoa Standard Time": "Pacific/Apia",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "Mountain Standard Time": "America/Denver",
    "US Mountain Standard Time": "America/Phoenix",
    "Central Standard Time": "America/Chicago",
    "Eastern Standard Time": "America/New_York",
    "SA Pacific Standard Time": "America/Bogota",
    "Atlantic Standard Time": "America/Halifax",
    "Newfoundland Standard Time": "America/St_Johns",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "FLE Standard Time": "Europe/Kiev",
    "Russian Standard Time": "Europe/Moscow",
    "Arabian Standard Time": "Asia/Dubai",
    "India Standard Time": "Asia/Calcutta",
    "Nepal Standard Time": "Asia/Katmandu",
    "Singapore Standard Time": "Asia/Singapore",
    "China Standard Time": "Asia/Shanghai",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "Lord Howe Standard Time": "Australia/Lord_Howe",
    "New Zealand Standard Time": "Pacific/Auckland",
    "Chatham Islands Standard Time": "Pacific/Chatham",
    "Line Islands Standard Time": "Pacific/Kiritimati",
}
_WINDOWS_BY_LOWER = {name.lower(): iana for name, iana in WINDOWS_TO_IANA.items()}


class UnknownTimeZone(ValueError):
    """A zone name that is neither a known Windows name nor an IANA name."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def resolve_zone(name: str) -> tzinfo:
    """Return the tzinfo for a Windows or IANA zone name.

    Raises:
        UnknownTimeZone: if the name is not recognised (Graph answers 400 for those).
    """
    iana = _WINDOWS_BY_LOWER.get(name.strip().lower())
    try:
        return ZoneInfo(iana or name.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnknownTimeZone(name) from exc


def parse_graph_datetime(value: str, zone_name: str) -> tuple[datetime, datetime]:
    """Parse a ``dateTimeTimeZone`` pair.

    A ``dateTime`` that carries an offset (or ``Z``) is first converted to ``zone_name``;
    Graph's contract is "no offset", so this is a lenient choice.

    Returns:
        ``(local, utc)``: the naive wall-clock time in ``zone_name`` and the aware UTC instant.

    Raises:
        UnknownTimeZone: on a bad zone name.
        ValueError: on an unparsable ``dateTime``.
    """
    zone = resolve_zone(zone_name)
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(zone).replace(tzinfo=None)
    local = parsed
    utc = local.replace(tzinfo=zone).astimezone(UTC)
    return local, utc


def parse_query_datetime(value: str) -> datetime:
    """Parse ``startDateTime``/``endDateTime`` query values into aware UTC datetimes.

    A value without offset is taken as UTC. A ``+`` that arrived unencoded in a query string
    has become a space; it is restored first.
    """
    parsed = datetime.fromisoformat(value.strip().replace(" ", "+"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_graph_datetime(value: datetime) -> str:
    """Format a naive wall-clock datetime as Graph does: seconds plus 7 fractional digits."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond * 10:07d}"


def format_utc_timestamp(value: datetime) -> str:
    """Format an aware datetime for ``createdDateTime``/``lastModifiedDateTime`` (UTC, ``Z``)."""
    utc = value.astimezone(UTC).replace(tzinfo=None)
    return format_graph_datetime(utc) + "Z"
