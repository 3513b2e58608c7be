"""The mechanism: find a real component or start a throwaway one; stop it; check nothing is left.

A `Component` says how to reach an existing server (an environment variable, a default
address), how to tell that it works (`probe`), how to start a throwaway one (`start`), the
one command that installs what `start` needs, and how long starting may take. `provide()`
applies the same rules to every component:

1. the environment variable is set: use that server; if it does not work, stop the run;
2. something answers at the default address: use it (CI and a developer's own servers);
   if it answers but does not work, stop the run and say why;
3. nothing answers: start a throwaway server in a temp folder, on a free loopback port;
   if it cannot be had on this machine (not installed, or not up within its timeout),
   stop the run at once with the command that installs it.

"Stop the run" is `pytest.exit`: one message for the session, not one failure per test.

A `Throwaway` is one server process in a temp folder of its own. The session knows every
process it started by pid and start time: the server, and, when stopping, the server's
descendants (PostgreSQL's backends and workers), so it can kill stragglers and check at
exit that none is left (`Registry.leftovers`). Each process also carries a token in its
environment (`PATROL_TEST_SERVER_TOKEN`), a second net for helpers that keep their
environment (servers that rewrite their process title, as PostgreSQL and Redis do, blank
it). Servers get a parent-death signal, so a session killed outright (SIGKILL) leaves no
server running; its temp folders are removed by the next session (`_remove_stale`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest

TOKEN_VAR = "PATROL_TEST_SERVER_TOKEN"
FOLDER_PREFIX = "patrol-test-"
OWNER_FILE = ".owner-pid"
MODE_VAR = "PATROL_TEST_SERVERS"  # "auto" (default), or "throwaway": start own even where defaults answer
STOP_TIMEOUT_S = 15.0
PROBE_TIMEOUT_S = 3.0


class Unavailable(Exception):
    """The component cannot be had on this machine (e.g. its binaries are not installed)."""


class StartFailed(Exception):
    """A throwaway server did not come up; the message carries the end of its log."""

    def __init__(self, message: str, *, port_in_use: bool = False) -> None:
        super().__init__(message)
        self.port_in_use = port_in_use


# -- processes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """A process as /proc shows it; (pid, start) names it across pid reuse."""

    pid: int
    ppid: int
    start: int
    running: bool

    @staticmethod
    def read(pid: int) -> Proc | None:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            return None
        # after the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        # utime stime cutime cstime priority nice threads itrealvalue starttime ...
        return Proc(pid, int(fields[1]), int(fields[19]), fields[0] not in (b"Z", b"X"))

    def alive(self) -> bool:
        now = Proc.read(self.pid)
        return now is not None and now.start == self.start and now.running

    def cmdline(self) -> str:
        try:
            with open(f"/proc/{self.pid}/cmdline", "rb") as fh:
                return " ".join(fh.read().decode(errors="replace").replace("\0", " ").split())
        except OSError:
            return "?"


def _all_procs() -> list[Proc]:
    procs = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            proc = Proc.read(int(entry.name))
            if proc is not None:
                procs.append(proc)
    return procs


def _descendants(root: int) -> list[Proc]:
    procs = _all_procs()
    children: dict[int, list[Proc]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def _processes_with_token(prefix: str) -> list[tuple[int, str]]:
    """(pid, command line) of live processes whose environment has TOKEN_VAR starting with prefix."""
    needle = f"{TOKEN_VAR}={prefix}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                environ = fh.read()
            if needle not in environ:
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
            if state in (b"Z", b"X"):  # exited, waiting to be reaped: not running
                continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                cmdline = " ".join(fh.read().decode(errors="replace").replace("\0", " ").split())
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if any(line.startswith(needle) for line in environ.split(b"\0")):
            found.append((int(entry.name), cmdline))
    return found


def _pdeathsig(sig: int) -> Callable[[], None]:
    """preexec_fn: the child gets `sig` when the session's process dies (Linux prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl

    def set_signal() -> None:
        prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG; after setuid, which would clear it

    return set_signal


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def answers(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether anything accepts a TCP connection at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class RunAs:
    """An unprivileged user to run servers as when the session is root (PostgreSQL refuses root)."""

    name: str
    uid: int
    gid: int


class Throwaway:
    """One server process in a temp folder of its own; `stop()` ends it and removes the folder."""

    def __init__(self, registry: Registry, name: str) -> None:
        self.registry = registry
        self.name = name
        self.folder = registry.make_folder(name)
        self.token = f"{registry.token}-{name}-{len(registry.throwaways)}"
        self.log_path = self.folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.known: set[Proc] = set()  # every process of this server seen: the server, its descendants
        self.stop_signal: int = signal.SIGTERM
        self.stopped = False
        self.started_s = 0.0
        self.url = ""
        registry.throwaways.append(self)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The server's environment: the caller's less libpq/Redis settings, plus the token."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDIS"))}
        env.update(extra or {})
        env[TOKEN_VAR] = self.token
        return env

    def run(self, argv: Sequence[str], *, timeout_s: float, run_as: RunAs | None = None,
            env: dict[str, str] | None = None) -> None:
        """A one-off helper (initdb): it must succeed within timeout_s; its output goes to the log."""
        with open(self.log_path, "ab") as log:
            try:
                subprocess.run(
                    list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    cwd=self.folder, env=self.env(env), timeout=timeout_s, check=True,
                    **_user_kwargs(run_as),
                )
            except subprocess.TimeoutExpired as exc:
                raise StartFailed(f"{argv[0]} took over {timeout_s:.0f} s{self.log_tail()}") from exc
            except subprocess.CalledProcessError as exc:
                raise StartFailed(f"{argv[0]} failed (exit {exc.returncode}){self.log_tail()}") from exc

    def spawn(self, argv: Sequence[str], *, run_as: RunAs | None = None, env: dict[str, str] | None = None,
              stop_signal: int = signal.SIGTERM, death_signal: int = signal.SIGTERM) -> None:
        """Starts the server (in its own session, stdout/stderr to the log)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.stop_signal = stop_signal
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.folder, env=self.env(env), start_new_session=True,
                preexec_fn=_pdeathsig(death_signal), **_user_kwargs(run_as),
            )
        proc = Proc.read(self.process.pid)
        if proc is not None:
            self.known.add(proc)

    def wait_ready(self, ready: Callable[[], bool], timeout_s: float) -> None:
        """Polls `ready` until it says yes; StartFailed if the process exits or time runs out."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.process.poll()
            if code is not None:
                tail = self.log_tail()
                in_use = "in use" in tail.lower() or "could not bind" in tail.lower()
                raise StartFailed(f"the {self.name} server exited with code {code}{tail}", port_in_use=in_use)
            with contextlib.suppress(Exception):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise StartFailed(
                    f"the {self.name} server was not ready within {timeout_s:.0f} s{self.log_tail()}"
                )
            time.sleep(0.1)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return ""
        return "; its log (" + str(self.log_path) + ") ends:\n    " + "\n    ".join(text) if text else ""

    def alive(self) -> list[tuple[int, str]]:
        """(pid, command line) of this server's processes that still run."""
        live = {proc.pid: proc.cmdline() for proc in self.known if proc.alive()}
        live.update(_processes_with_token(self.token))
        return sorted(live.items())

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stops the server (its own stop signal, then SIGKILL), kills stragglers, removes the folder."""
        if self.process is not None and self.process.poll() is None:
            self.known.update(_descendants(self.process.pid))
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                self.process.wait(5)
        for _ in range(50):  # e.g. backends that outlived a killed postmaster
            stragglers = self.alive()
            if not stragglers:
                break
            for pid, _cmd in stragglers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.registry.forget_folder(self.folder)
        self.stopped = True


def _user_kwargs(run_as: RunAs | None) -> dict[str, object]:
    if run_as is None:
        return {}
    return {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}


# -- the session's record ------------------------------------------------------------------------


class Registry:
    """What this session started and made; stops it all and checks that nothing is left."""

    def __init__(self, base: Path | None = None) -> None:
        self.token = uuid.uuid4().hex[:16]
        self.base = base or Path(tempfile.gettempdir())
        self.throwaways: list[Throwaway] = []
        self.provided: list[Provided] = []
        self.folders: list[Path] = []
        self.made_folders = 0
        self.stop_errors: list[str] = []
        _remove_stale(self.base)

    def make_folder(self, name: str) -> Path:
        folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{name}-", dir=self.base))
        (folder / OWNER_FILE).write_text(str(os.getpid()))
        self.folders.append(folder)
        self.made_folders += 1
        return folder

    def forget_folder(self, folder: Path) -> None:
        if not folder.exists() and folder in self.folders:
            self.folders.remove(folder)

    def stop_all(self) -> None:
        for throwaway in reversed(self.throwaways):
            if throwaway.stopped:
                continue
            try:
                throwaway.stop()
            except Exception as exc:  # keep stopping the others; the check reports what is left
                self.stop_errors.append(f"{throwaway.name}: {exc!r}")
        for folder in list(self.folders):
            shutil.rmtree(folder, ignore_errors=True)
            self.forget_folder(folder)

    def leftovers(self) -> list[str]:
        """Processes this session started that still run, and temp folders it made that remain."""
        live = dict(_processes_with_token(self.token))
        for throwaway in self.throwaways:
            live.update(throwaway.alive())
        left = [f"process {pid} ({cmd[:80]})" for pid, cmd in sorted(live.items())]
        left += [f"folder {folder}" for folder in self.folders if folder.exists()]
        return left + self.stop_errors

    def summary(self) -> tuple[str, bool]:
        """One line for the terminal summary, and whether the check passed."""
        used = "; ".join(p.describe() for p in self.provided)
        left = self.leftovers()
        started = len(self.throwaways)
        if left:
            check = f"LEFT BEHIND after stopping {started} throwaway server(s): " + ", ".join(left)
        else:
            check = (f"{started} throwaway server(s) started and stopped, {self.made_folders} temp folder(s) "
                     f"made and removed, no server process left")
        return f"real servers: {used or 'none used'}. {check}", not left


def _remove_stale(base: Path) -> None:
    """Temp folders of earlier sessions that died without cleaning up (their owner is gone)."""
    for folder in base.glob(f"{FOLDER_PREFIX}*"):
        try:
            pid = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if pid == os.getpid() or Path(f"/proc/{pid}").exists():
            continue
        shutil.rmtree(folder, ignore_errors=True)


# -- components ----------------------------------------------------------------------------------


@dataclass
class Provided:
    """A component as the tests get it: its URL, and the throwaway behind it (None: an existing server)."""

    component: Component
    url: str
    throwaway: Throwaway | None = None
    origin: str = ""

    def describe(self) -> str:
        where = urlsplit(self.url).netloc.rsplit("@", 1)[-1] or urlsplit(self.url).path  # file:// binaries
        if self.throwaway is None:
            return f"{self.component.name} at {where} ({self.origin})"
        return (f"{self.component.name} throwaway at {where} ({self.origin}, "
                f"up in {self.throwaway.started_s:.1f} s)")

    def close(self) -> None:
        if self.throwaway is not None and not self.throwaway.stopped:
            self.throwaway.stop()


@dataclass(frozen=True)
class Component:
    """A real component the tests need, found or started the same way as every other."""

    name: str
    url_env: str                                      # the user's own server, e.g. PATROL_TEST_POSTGRES_URL
    default_url: str | None                           # tried when url_env is unset, e.g. the machine's
    probe: Callable[[str, float], None]               # raises if the server at url does not work
    start: Callable[[Registry, float], Provided]      # a throwaway; Unavailable / StartFailed
    install: str                                      # the one command that installs what `start` needs
    start_timeout_s: float
    extra_hint: str = field(default="deselect its tests with -m 'not server'")
    # whether something is at default_url to probe; None: a TCP connection is accepted there
    present: Callable[[str], bool] | None = None


def declared_in(module_name: str, name: str, **options: Any) -> Component:
    """The component a server module declares by the names every one of them defines: URL_ENV,
    DEFAULT_URL (None: nothing to find), INSTALL, START_TIMEOUT_S, `probe` and `start`.

    Called last in the module (`COMPONENT = declared_in(__name__, "Redis")`), once all are
    defined; `options` are the optional fields (extra_hint, present).
    """
    module = sys.modules[module_name]
    return Component(name, module.URL_ENV, module.DEFAULT_URL, module.probe, module.start,  # field order
                     module.INSTALL, module.START_TIMEOUT_S, **options)


def _exit(component: Component, reason: str, *, install: bool) -> NoReturn:
    lines = [f"{component.name} for the tests: {reason}"]
    if install:
        lines.append(f"install it with: {component.install}")
    lines.append(f"(or point {component.url_env} at a working server, or {component.extra_hint})")
    pytest.exit("\n".join(lines), returncode=pytest.ExitCode.INTERRUPTED)
    raise AssertionError("pytest.exit returned")


def provide(component: Component, registry: Registry) -> Provided:
    """The one way every component is had: configured, found, or started (else the run stops)."""
    provided = _provide(component, registry)
    registry.provided.append(provided)
    return provided


def _provide(component: Component, registry: Registry) -> Provided:
    configured = os.environ.get(component.url_env, "").strip()
    if configured:
        try:
            component.probe(configured, PROBE_TIMEOUT_S)
        except Exception as exc:
            _exit(component, f"{component.url_env}={configured} does not work ({exc})", install=False)
        return Provided(component, configured, origin=component.url_env)

    mode = os.environ.get(MODE_VAR, "auto")
    if component.default_url and mode != "throwaway":
        parts = urlsplit(component.default_url)
        there = (component.present or (lambda _: answers(parts.hostname or "127.0.0.1", parts.port or 0)))
        if there(component.default_url):
            try:
                component.probe(component.default_url, PROBE_TIMEOUT_S)
            except Exception as exc:
                where = parts.path if component.present else f"{parts.hostname}:{parts.port}"
                _exit(component, f"something answers at {where} but "
                      f"{component.default_url} does not work ({exc}); set {MODE_VAR}=throwaway to start "
                      f"a throwaway one instead", install=False)
            return Provided(component, component.default_url, origin="found at the default address")

    began = time.monotonic()
    try:
        provided = component.start(registry, component.start_timeout_s)
    except Unavailable as exc:
        _exit(component, f"none is configured or answering, and none can be started here: {exc}",
              install=True)
    except StartFailed as exc:
        _exit(component, f"a throwaway one did not start: {exc}", install=True)
    assert provided.throwaway is not None
    provided.throwaway.started_s = time.monotonic() - began
    provided.throwaway.url = provided.url
    return provided


def start_with_free_port(throwaway: Throwaway, launch: Callable[[int], Callable[[], bool]],
                         timeout_s: float, attempts: int = 3) -> int:
    """Starts on a free loopback port; another port if that one was taken meanwhile. Returns the port."""
    deadline = time.monotonic() + timeout_s
    for attempt in range(attempts):
        port = free_port()
        ready = launch(port)
        try:
            throwaway.wait_ready(ready, max(1.0, deadline - time.monotonic()))
            return port
        except StartFailed as exc:
            if not exc.port_in_use or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def serve_on_free_port(component: Component, throwaway: Throwaway, spawn: Callable[[int], None],
                       url: Callable[[int], str], timeout_s: float, origin: str) -> Provided:
    """A throwaway server spawned on a free loopback port, ready once the component's own probe
    passes at url(port): the tests get it only when it does what they need, not when it listens."""

    def launch(port: int) -> Callable[[], bool]:
        spawn(port)
        return lambda: component.probe(url(port), 1) is None

    port = start_with_free_port(throwaway, launch, timeout_s)
    return Provided(component, url(port), throwaway, origin=origin)
