"""A real HTTP endpoint on loopback that keeps every POST it is sent: the office's webhook and a
loudspeaker in `patrol demo-camera`, the receiver in the camera tests and in the alert-latency
benchmark. It answers a scripted list of statuses (then 200), so a test can play a failing
endpoint, and notes when each request arrived, so the benchmark can time delivery."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float  # time.time() when the body had been read


@dataclass
class Receiver:
    name: str = "hook"  # the URL's path, and the server thread's name
    statuses: list[int] = field(default_factory=list)  # answered in order; 200 once used up
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    port: int = 0  # 0: any free port

    def __post_init__(self) -> None:
        receiver = self
        lock = threading.Lock()  # the server answers each request on a thread of its own

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  # the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                at = time.time()
                with lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    headers = dict(self.headers.items())
                    receiver.received.append(Received(self.path, headers, body, status, at))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{self.name}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def delivered(self) -> list[Received]:
        """The requests answered with a 2xx, in the order they came."""
        return [r for r in list(self.received) if 200 <= r.status < 300]
