"""A fake HTTP server on loopback that plays scripted answers, one handler per connection."""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable, List


class Request:
    """What the fake server received: method, path, lower-case headers, body."""

    def __init__(self, method: str, path: str, headers: dict, body: bytes):
        self.method, self.path, self.headers, self.body = method, path, headers, body


def read_request(conn: socket.socket) -> Request:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client closed before a full request")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    first, *lines = head.decode("latin-1").split("\r\n")
    method, path, _ = first.split(" ", 2)
    headers = {}
    for line in lines:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        body += conn.recv(65536)
    return Request(method, path, headers, body)


class FakeServer:
    """Answers connection i with handlers[i](request, conn); records every request."""

    def __init__(self, handlers: List[Callable[[Request, socket.socket], None]]):
        self.handlers = list(handlers)
        self.requests: List[Request] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.errors: List[BaseException] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.handlers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            handler = self.handlers.pop(0)
            try:
                req = read_request(conn)
                self.requests.append(req)
                handler(req, conn)
            except BaseException as e:  # reported by the test
                self.errors.append(e)
            finally:
                conn.close()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


def respond(status: int, body: bytes = b"", content_type: str = "application/json", headers: dict = None):
    """A handler sending one complete answer."""
    def handler(req, conn):
        reason = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}.get(status, "Error")
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
        if status != 204:
            lines.append(f"Content-Type: {content_type}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return handler


def stream(*pieces, close_with_end_chunk: bool = True, hold: float = 0.0):
    """A handler sending an event stream (chunked), one chunk per piece, then ending it
    (with the last chunk, or by dropping the connection when close_with_end_chunk is False).
    hold: seconds to stay silent before ending (for idle timeouts)."""
    def handler(req, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for piece in pieces:
            data = piece.encode() if isinstance(piece, str) else piece
            conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        if hold:
            time.sleep(hold)
        if close_with_end_chunk:
            conn.sendall(b"0\r\n\r\n")
    return handler
