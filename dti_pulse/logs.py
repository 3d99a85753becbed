"""Log lines as text for a terminal, or one JSON object a line for a log pipeline
(DTI_LOG_FORMAT=json)."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import orjson

FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"at": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(level: str, log_format: str = "text", access_lines: bool = True) -> None:
    """access_lines: the HTTP access log (logger dti_pulse.access, INFO) is written even when
    the level is higher; False silences it whatever the level."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for chatty in ("kafka", "aiokafka", "httpx", "faust", "mode"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("dti_pulse.access").setLevel(logging.INFO if access_lines else logging.CRITICAL + 1)
