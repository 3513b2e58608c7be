"""A client that disconnects mid-upload: one log line, no traceback, nothing stored."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from tests.service.api.test_photos import _files, _rows


def test_a_client_gone_mid_upload_is_one_log_line_not_a_server_error(
    client: TestClient, keys, settings, caplog
):
    boundary = "patrolboundary"
    head = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + b"\xff\xd8\xff"
        + b"\x00" * 4096
    )
    messages = [{"type": "http.request", "body": head, "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/photos",
        "raw_path": b"/v1/photos",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", keys.headers("citizen")["Authorization"].encode()),
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
        ],
    }
    with caplog.at_level(logging.INFO):
        client.portal.call(client.app, scope, receive, send)  # raised ClientDisconnect before the handler
    gone = [r for r in caplog.records if "client disconnected during POST /v1/photos" in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO and gone[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sent[0]["status"] == 499
    assert (
        _rows(settings) == {"frames": 0, "observations": 0, "issues": 0, "sources": 0}
        and _files(settings) == []
    )
