"""pytest wiring: a fixture per real component, cleanup on every way out, and the exit check.

Loaded from tests/conftest.py (`pytest_plugins`). Components are had lazily: a run that
selects no test needing one (e.g. `-m "not server"`) starts nothing.

Cleanup: each fixture stops its throwaway at its teardown; `pytest_sessionfinish` stops
whatever is left (an interrupted run: Ctrl-C, or SIGTERM, which this plugin turns into the
same KeyboardInterrupt), then checks that no process the session started still runs and
no temp folder it made remains. The result is a line of the terminal summary; anything
left fails the session. An atexit hook stops servers if pytest is left some other way.
"""

from __future__ import annotations

import atexit
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from tests.servers import chromium, label_studio_server, postgres_server, redis_server, rtsp_server
from tests.servers.core import Component, Provided, Registry, provide

REGISTRY = pytest.StashKey[Registry]()
_RESTORE = pytest.StashKey[list]()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one interruption; the cleanup must not be cut short
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config: pytest.Config) -> None:
    registry = Registry()
    config.stash[REGISTRY] = registry
    atexit.register(registry.stop_all)
    restore = [lambda: atexit.unregister(registry.stop_all)]
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
            restore.append(lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    config.stash[_RESTORE] = restore


def pytest_unconfigure(config: pytest.Config) -> None:
    registry = config.stash.get(REGISTRY, None)
    if registry is not None:
        registry.stop_all()
    for undo in config.stash.get(_RESTORE, []):
        undo()


@pytest.hookimpl(trylast=True)  # after the runner's own sessionfinish has torn fixtures down
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    registry = session.config.stash[REGISTRY]
    registry.stop_all()
    _, passed = registry.summary()
    if not passed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    registry = config.stash[REGISTRY]
    if not registry.provided and not registry.throwaways:
        return
    line, passed = registry.summary()
    terminalreporter.write_sep("-", "real servers")
    terminalreporter.write_line(line, green=passed, red=not passed)


def _fixture_for(component: Component, registry: Registry) -> Iterator[str]:
    provided = provide(component, registry)
    yield provided.url
    provided.close()


@pytest.fixture(scope="session")
def real_servers(pytestconfig: pytest.Config) -> Registry:
    """The session's record of the real components it found or started."""
    return pytestconfig.stash[REGISTRY]


@pytest.fixture(scope="session")
def postgres_admin_url(real_servers: Registry) -> Iterator[str]:
    """A libpq URL to a PostgreSQL where the tests may create databases (see tests/servers)."""
    yield from _fixture_for(postgres_server.COMPONENT, real_servers)


@pytest.fixture
def rtsp_stream(real_servers: Registry) -> Iterator[Provided]:
    """An RTSP stream for this test alone, since tests kill and stall its server: `.url`, and
    `.throwaway`, the `rtsp_server.RtspThrowaway` that controls it (None for PATROL_TEST_RTSP_URL's)."""
    provided = provide(rtsp_server.COMPONENT, real_servers)
    yield provided
    provided.close()


@pytest.fixture(scope="session")
def redis_url(real_servers: Registry) -> Iterator[str]:
    """redis://host:port of a Redis for the tests; each test picks its own database number."""
    yield from _fixture_for(redis_server.COMPONENT, real_servers)


@pytest.fixture(scope="session")
def label_studio_url(real_servers: Registry) -> Iterator[str]:
    """http://pat:<token>@host:port of a Label Studio (tests/servers/label_studio_server.py): one
    for the session, since a fresh one spends minutes on its migrations."""
    yield from _fixture_for(label_studio_server.COMPONENT, real_servers)


@pytest.fixture(scope="session")
def chromium_path(real_servers: Registry) -> Iterator[str]:
    """Path of the Chromium binary the `browser` tests drive (see tests/servers/chromium.py)."""
    provided = provide(chromium.COMPONENT, real_servers)
    yield str(chromium.binary(provided.url))
