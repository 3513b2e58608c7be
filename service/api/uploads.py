"""Read request bodies under a size limit, refusing oversized ones before anything is parsed.

FastAPI parses a declared `UploadFile` before the route runs, spooling the whole body to
disk first, and turns any error while doing so into a 400. Routes that take large uploads
therefore declare no body parameters and call these helpers instead: the Content-Length
header is checked first (413 without reading a byte), then the stream is counted as it
arrives (413 as soon as it passes the limit, for chunked or lying clients), and only then
does the multipart parser see it.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service.errors import ServiceError, check_no_nul

MAX_FORM_FIELD_BYTES = 64 * 1024
# Deeper JSON is no document we take (a GeoJSON MultiPolygon collection nests 8 levels): refused
# before parsing, since json.loads recurses once per level and 100,000 levels end in a
# RecursionError (a 500).
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class BodyTooLargeError(ServiceError):
    """The body is declared or streams past the limit (413, see service.api.errors)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"request body exceeds the {limit:,}-byte limit ({limit / 1024 / 1024:.0f} MB)")


def check_content_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    try:
        size = int(declared)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid Content-Length {declared!r}") from None
    if size > limit:
        raise BodyTooLargeError(limit)


async def _counted(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise BodyTooLargeError(limit)
        yield chunk


@dataclass(frozen=True)
class UploadedForm:
    fields: dict[str, str]
    file_name: str
    file_bytes: bytes


@asynccontextmanager
async def single_file_form(
    request: Request, *, limit: int, file_field: str = "file", allowed_fields: tuple[str, ...] = ()
) -> AsyncIterator[tuple[UploadFile, dict[str, str]]]:
    """The one file part (spooled by Starlette) and the small text fields of a multipart/form-data
    body within `limit` bytes; the parts are closed when the block ends."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"expected multipart/form-data with a '{file_field}' part, got {content_type or 'no type'!r}",
        )
    check_content_length(request, limit)
    parser = MultiPartParser(
        request.headers,
        _counted(request, limit),
        max_files=1,
        max_fields=len(allowed_fields),
        max_part_size=MAX_FORM_FIELD_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"malformed multipart body: {exc.message}"
        ) from None
    try:
        upload = form.get(file_field)
        if not isinstance(upload, UploadFile):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"expected a file part named '{file_field}'"
            )
        unknown = sorted(k for k in form if k != file_field and k not in allowed_fields)
        if unknown:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"unexpected form fields {unknown}; allowed: {', '.join((file_field, *allowed_fields))}",
            )
        yield upload, {k: check_no_nul(k, v) for k, v in form.items() if isinstance(v, str)}
    finally:
        await form.close()


async def read_single_file_form(
    request: Request, *, limit: int, file_field: str = "file", allowed_fields: tuple[str, ...] = ()
) -> UploadedForm:
    """One file part plus a few small text fields from multipart/form-data, within `limit` bytes."""
    async with single_file_form(request, limit=limit, file_field=file_field,
                                allowed_fields=allowed_fields) as (upload, fields):
        return UploadedForm(fields, upload.filename or "", await upload.read())


async def read_json_body(request: Request, *, limit: int, media_types: tuple[str, ...]) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in media_types:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"expected a body of type {' or '.join(media_types)}, got {content_type or 'none'!r}",
        )
    check_content_length(request, limit)
    chunks = [chunk async for chunk in _counted(request, limit)]
    # Tens of megabytes take a second to scan and parse: off the event loop, which keeps serving.
    return await run_in_threadpool(parse_json, b"".join(chunks))


def parse_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The document in `raw`; 422 when it is no JSON or nests deeper than `max_depth`."""
    depth = json_depth(raw)
    if depth > max_depth:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"JSON nested {depth} levels deep; at most {max_depth}"
        )
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"body is not valid JSON: {exc}") from None


def json_depth(raw: bytes) -> int:
    """How deep the brackets of a JSON text nest, without parsing it (and so without recursion):
    strings are blanked first, since brackets inside them do not count, then the running count
    of openings less closings is taken in C."""
    brackets = np.frombuffer(_JSON_STRING.sub(b'""', raw).translate(None, _NOT_BRACKETS), dtype=np.uint8)
    if brackets.size == 0:
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())
