"""What the single-file upload routes (photos, surveys) share: the form's OpenAPI body, its
`note` field and the answers they document besides success.

The routes read the body themselves (service.api.uploads: size first, then parsing), so FastAPI
cannot describe it from a parameter; `openapi_extra` carries this description instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException, status

FILE_FIELD = "file"
NOTE_FIELD = "note"
MAX_NOTE_CHARS = 2000


def single_file_form_doc(file_description: str, **fields: dict[str, Any]) -> dict[str, Any]:
    """A route's `openapi_extra`: a multipart body with the required file part, the optional text
    `fields` (name: JSON schema) and the note."""
    properties = {
        FILE_FIELD: {"type": "string", "format": "binary", "description": file_description},
        **fields,
        NOTE_FIELD: {"type": "string", "maxLength": MAX_NOTE_CHARS},
    }
    schema = {"type": "object", "required": [FILE_FIELD], "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def upload_responses(*, earlier: str, unusable: str) -> dict[int | str, dict[str, Any]]:
    """The answers an upload documents besides its success: `earlier` for 200 (the same bytes were
    analysed with this model before), too large for 413, `unusable` for 422."""
    return {
        200: {"description": earlier},
        413: {"description": "The body exceeds the route's upload limit; nothing was kept."},
        422: {"description": unusable},
    }


def form_note(fields: Mapping[str, str]) -> str:
    """The form's note ("" without one); 422 past MAX_NOTE_CHARS."""
    note = fields.get(NOTE_FIELD, "")
    if len(note) > MAX_NOTE_CHARS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"note: at most {MAX_NOTE_CHARS} characters"
        )
    return note
