"""A Server-Sent Events parser (text/event-stream), shared by the sync and async clients."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    event: str
    data: dict[str, Any]
    id: str | None = None


class SseParser:
    """Feed lines; complete events come out. Comments (``: keep-alive``) are skipped."""

    def __init__(self) -> None:
        self._event, self._data, self._id = "message", [], None  # type: ignore[var-annotated]
        self.last_id: str | None = None

    def feed(self, line: str) -> Event | None:
        line = line.rstrip("\r\n")
        if line == "":
            if not self._data:
                self._event = "message"
                return None
            raw = "\n".join(self._data)
            try:
                data = json.loads(raw)
            except ValueError:
                data = {"raw": raw}
            ev = Event(self._event, data if isinstance(data, dict) else {"value": data},
                       self._id)
            if self._id:
                self.last_id = self._id
            self._event, self._data, self._id = "message", [], None
            return ev
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            self._id = value
        return None
