"""A client that goes away mid-request is logged as that, in one line, not as a server error.

Starlette raises `ClientDisconnect` when the connection closes while a route reads the body (a
phone losing signal halfway through an upload). Unhandled, it reaches uvicorn as "Exception in
ASGI application" with a traceback, which reads like a bug and buries real ones. Nothing was
stored (uploads are read whole before anything is written), so there is nothing to undo either.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from starlette.requests import ClientDisconnect

from service.metrics import UNMATCHED_ROUTE, method_label

logger = logging.getLogger(__name__)

# nginx's "client closed request": never seen by the client, but counted in /metrics as what it was.
CLIENT_CLOSED_REQUEST = 499


async def client_gone(request: Request, exc: Exception) -> Response:
    route = getattr(request.scope.get("route"), "path", UNMATCHED_ROUTE)
    logger.info("client disconnected during %s %s; request abandoned", method_label(request.method), route)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def add_disconnect_handler(app: FastAPI) -> None:
    app.add_exception_handler(ClientDisconnect, client_gone)
