"""herald.SSEParser: the WHATWG event-stream rules, fed in any chunking."""

import pytest

from herald import Event, SSEParser

STREAM = (
    "\ufeffretry: 2500\n"
    ": ping\n"
    "\n"
    "event: status\r\n"
    "id: 7\r\n"
    "data: {\"a\": 1}\r\n"
    "\r\n"
    "event: log\r"
    "data: line one\r"
    "data:\r"
    "data:  two spaces\r"
    "\r"
    "data\n"
    "\n"
    "event: end\n"
    "data: {\"state\": \"succeeded\"}\n"
    "\n"
)
EXPECTED = [
    Event("status", '{"a": 1}', "7"),
    Event("log", "line one\n\n two spaces", "7"),
    Event("message", "", "7"),
    Event("end", '{"state": "succeeded"}', "7"),
]


def feed_all(parser, data, size):
    events = []
    for i in range(0, len(data), size):
        events += parser.feed(data[i:i + size])
    return events


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_every_chunking_gives_the_same_events(size):
    parser = SSEParser()
    assert feed_all(parser, STREAM.encode(), size) == EXPECTED
    assert parser.retry == 2500
    assert parser.comments == ["ping"]
    assert parser.last_event_id == "7"


def test_a_cr_at_a_chunk_end_and_its_lf_in_the_next_make_one_line_end():
    parser = SSEParser()
    assert parser.feed(b"data: x\r") == []
    assert parser.feed(b"\n\r") == [Event("message", "x", "")]
    assert parser.feed(b"\n") == []   # CR then a separate LF: two line ends, the second a blank line


def test_utf8_split_inside_a_character():
    data = "data: été ✓\n\n".encode()
    parser = SSEParser()
    assert feed_all(parser, data, 1) == [Event("message", "été ✓", "")]


def test_the_id_persists_and_an_event_without_data_still_sets_it():
    parser = SSEParser()
    assert parser.feed(b"id: 3\n\n") == []        # not dispatched, but the id counts
    assert parser.feed(b"data: a\n\n") == [Event("message", "a", "3")]
    assert parser.feed(b"event: end\ndata: {}\n\n") == [Event("end", "{}", "3")]


def test_bad_retry_and_an_id_with_nul_are_ignored():
    parser = SSEParser()
    parser.feed(b"retry: 100\nretry: 12a\nretry: -5\nid: 1\nid: x\x00y\ndata: d\n\n")
    assert parser.retry == 100
    assert parser.last_event_id == "1"


def test_unknown_fields_and_an_unended_event_are_not_dispatched():
    parser = SSEParser()
    assert parser.feed(b"foo: bar\ndata: half") == []
    assert parser.feed(b"\n") == []   # the data line ended, the event not yet
    assert parser.feed(b"\n") == [Event("message", "half", "")]
