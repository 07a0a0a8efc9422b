"""JSON log lines for worker processes, with the job id and the request id carried in."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

job_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "job_context", default=None)

_STD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "color_message"}


def _job_fields() -> Mapping[str, Any]:
    return job_context.get() or {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line. ``context`` supplies the ids of the work in hand (the job and
    request ids in a worker, the request id in the API), so every line can be joined up."""

    def __init__(self, context: Callable[[], Mapping[str, Any]] = _job_fields) -> None:
        super().__init__()
        self._context = context

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        doc.update(self._context())
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure(level: str | int = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
