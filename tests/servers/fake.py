"""A fake component for testing the mechanism itself: a tiny TCP server with a worker child.

The server (plain Python, no imports beyond the standard library) accepts connections on
the port it is given and starts one child process first, as PostgreSQL starts its workers,
so the tests see that stopping a throwaway also ends the processes its server started.
`--stubborn` makes it ignore SIGTERM, so stopping has to fall back to SIGKILL.
"""

from __future__ import annotations

import signal
import sys

from tests.servers.core import Component, Provided, Registry, Throwaway, answers, start_with_free_port

# Like PostgreSQL's backends, the worker exits when its server is gone.
WORKER = "import os, sys, time\nwhile os.getppid() == int(sys.argv[1]): time.sleep(0.1)"
SERVER = r"""
import os, signal, socket, subprocess, sys
if "--stubborn" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
worker = subprocess.Popen([sys.executable, "-c", WORKER, str(os.getpid())])
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
while True:
    sock.accept()[0].close()
"""


def start(registry: Registry, timeout_s: float, *, stubborn: bool = False) -> Provided:
    throwaway = Throwaway(registry, "fake")

    def launch(port: int):  # type: ignore[no-untyped-def]
        argv = [sys.executable, "-c", SERVER.replace("WORKER", repr(WORKER)), str(port)]
        argv += ["--stubborn"] if stubborn else []
        throwaway.spawn(argv, stop_signal=signal.SIGTERM)
        return lambda: answers("127.0.0.1", port, 0.2)

    port = start_with_free_port(throwaway, launch, timeout_s)
    return Provided(COMPONENT, f"fake://127.0.0.1:{port}", throwaway, origin="tests/servers/fake.py")


def probe(url: str, timeout_s: float) -> None:
    host, port = url.split("://", 1)[1].split(":")
    if not answers(host, int(port), timeout_s):
        raise ConnectionRefusedError(url)


COMPONENT = Component(
    name="Fake",
    url_env="PATROL_TEST_FAKE_URL",
    default_url="fake://127.0.0.1:1",  # nothing listens on port 1
    probe=probe,
    start=start,
    install="make install-fake",
    start_timeout_s=20.0,
)
