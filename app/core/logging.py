"""Structured (JSON) logs for the API, with the request id of the request being served."""

from __future__ import annotations

import contextvars
import logging
import sys

from workers.logs import JsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id",
                                                                            default=None)


def _request_fields() -> dict[str, str]:
    rid = request_id_var.get()
    return {"request_id": rid} if rid else {}


def configure_logging(fmt: str = "json", level: str = "INFO") -> None:
    """JSON lines on stderr (``fmt="text"`` for plain lines); uvicorn's access log is replaced
    by the app's own access line, which carries the request id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(_request_fields) if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
