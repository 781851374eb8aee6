"""An incremental Server-Sent Events parser (the WHATWG event-stream rules).

Feed it bytes as they arrive; it returns the events completed by them. Lines end
at CRLF, LF or CR (a CR at the end of one chunk may pair with an LF starting the
next); a leading BOM is dropped; lines starting with ``:`` are comments; a line
without a colon is a field with an empty value; one space after the colon is
removed. ``retry`` is taken only when all digits; an ``id`` containing NUL is
ignored; an event with no ``data`` is not dispatched, but its ``id`` still counts.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import List, Optional


@dataclass(frozen=True)
class Event:
    """One dispatched event: its type (``message`` when none was named), data, and the
    last event id in force when it was dispatched (what a reconnect sends)."""

    event: str
    data: str
    id: str


class SSEParser:
    """Bytes in, events out. ``last_event_id``, ``retry`` (ms or None) and ``comments`` persist."""

    def __init__(self) -> None:
        self.last_event_id = ""
        self.retry: Optional[int] = None
        self.comments: List[str] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""        # text not yet ended by a line break
        self._skip_lf = False     # the previous text ended in CR: an LF next belongs to it
        self._first = True
        self._event = ""
        self._data: List[str] = []

    def feed(self, chunk: bytes) -> List[Event]:
        """The events the chunk completes (possibly none)."""
        text = self._decoder.decode(chunk)
        if self._first and text:
            self._first = False
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._skip_lf and text:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        events: List[Event] = []
        buf = self._pending + text
        start = 0
        while True:
            cr = buf.find("\r", start)
            lf = buf.find("\n", start)
            if cr < 0 and lf < 0:
                break
            if lf < 0 or (0 <= cr < lf):
                end, nxt = cr, cr + 1
                if nxt < len(buf):
                    if buf[nxt] == "\n":
                        nxt += 1
                else:
                    self._skip_lf = True
            else:
                end, nxt = lf, lf + 1
            event = self._line(buf[start:end])
            if event is not None:
                events.append(event)
            start = nxt
        self._pending = buf[start:]
        return events

    def _line(self, line: str) -> Optional[Event]:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments.append(line[1:].lstrip(" "))
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isdigit() and value.isascii():
                self.retry = int(value)
        return None

    def _dispatch(self) -> Optional[Event]:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return Event(event=event, data="\n".join(data), id=self.last_event_id)
