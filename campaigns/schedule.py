"""When a batch's messages may go out: the campaign's start time and quiet hours, per customer time zone.

Read from the batch's frozen settings (campaigns/batch_settings.py), the settings that were approved: a
campaign edited while its batch is sending changes nothing for that batch.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class Schedule:
    send_at: datetime | None = None
    quiet_start: time | None = None  # no message from quiet_start ...
    quiet_end: time | None = None  # ... to quiet_end, in the customer's own time zone; may span midnight

    @classmethod
    def of(cls, batch):
        frozen = batch.settings
        return cls(send_at=frozen.send_at, quiet_start=frozen.quiet_hours_start, quiet_end=frozen.quiet_hours_end)

    def first_send(self, now):
        """When the batch's first messages may go: now, or the campaign's send_at when that is later."""
        return max(now, self.send_at) if self.send_at else now

    def earliest(self, moment, zone_name):
        """`moment`, or the end of the quiet hours it falls in for a customer in `zone_name`."""
        start, end = self.quiet_start, self.quiet_end
        if start is None or end is None or start == end:
            return moment
        zone = _zone(zone_name)
        local = moment.astimezone(zone)
        clock = local.time().replace(tzinfo=None)
        spans_midnight = start > end
        quiet = (clock >= start or clock < end) if spans_midnight else (start <= clock < end)
        if not quiet:
            return moment
        day = local.date() + timedelta(days=1 if spans_midnight and clock >= start else 0)
        return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def _zone(name):
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return UTC  # Customer.time_zone is validated on forms; a bad value from elsewhere falls back to UTC
