"""Reading a job's server-sent events: `progress` after each epoch (its id is the epoch), then
`done` with the final record."""

from __future__ import annotations

from collections.abc import Iterable

from core.jobs.records import JobProgress, JobRecord
from service.client.types import JobEvent


class EventParser:
    """Feed it the stream's lines; it gives back each complete event."""

    def __init__(self) -> None:
        self._event = "message"
        self._id: int | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> JobEvent | None:
        if line == "":  # a blank line ends the event
            event = self._finish()
            self._event, self._id, self._data = "message", None, []
            return event
        if line.startswith(":"):  # a comment: the server's keep-alive
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and value.isdigit():
            self._id = int(value)
        return None

    def _finish(self) -> JobEvent | None:
        data = "\n".join(self._data)
        if self._event == "progress":
            return JobEvent("progress", self._id, progress=JobProgress.model_validate_json(data))
        if self._event == "done":
            return JobEvent("done", self._id, record=JobRecord.model_validate_json(data))
        return None  # an event this client does not know: skipped, as EventSource does


def parse_lines(lines: Iterable[str]) -> list[JobEvent]:
    """Every event of a whole stream (tests, and the CLI reading a finished job)."""
    parser = EventParser()
    found = [parser.feed(line) for line in [*lines, ""]]
    return [event for event in found if event is not None]
