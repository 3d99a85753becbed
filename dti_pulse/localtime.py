"""The province's clock: sources send, and periods are cut in, Asia/Ho_Chi_Minh time."""
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
