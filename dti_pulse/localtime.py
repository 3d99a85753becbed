"""The province's clock: sources send, and periods are cut in, Asia/Ho_Chi_Minh time."""
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

# Asia/Ho_Chi_Minh has kept UTC+7, with no daylight saving, since 1975: a local day is then
# plain arithmetic, the same in Python and in ClickHouse SQL (day_sql).
LOCAL_OFFSET_MS = 7 * 3_600_000
DAY_MS = 86_400_000


def local_day(instant_ms: int) -> int:
    """Days since 1970-01-01 in local time."""
    return (instant_ms + LOCAL_OFFSET_MS) // DAY_MS


def day_sql(column: str) -> str:
    return f"intDiv({column} + {LOCAL_OFFSET_MS}, {DAY_MS})"
