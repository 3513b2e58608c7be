"""The single-file upload routes document one form and one set of answers, and cap the note alike."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from service.api.upload_forms import MAX_NOTE_CHARS, form_note


@pytest.mark.parametrize(
    ("path", "fields"), [("/v1/photos", ["file", "lon", "lat", "note"]), ("/v1/surveys", ["file", "note"])]
)
def test_both_upload_routes_document_the_form_and_the_upload_answers(client, path, fields):
    operation = client.get("/openapi.json").json()["paths"][path]["post"]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file"] and list(schema["properties"]) == fields
    assert schema["properties"]["file"]["format"] == "binary"
    assert schema["properties"]["note"] == {"type": "string", "maxLength": MAX_NOTE_CHARS}
    assert {"200", "413", "422"} <= set(operation["responses"])


@pytest.mark.parametrize(
    ("fields", "expected"),
    [({}, ""), ({"note": "村口"}, "村口"), ({"note": "x" * MAX_NOTE_CHARS}, "x" * MAX_NOTE_CHARS)],
)
def test_form_note(fields, expected):
    assert form_note(fields) == expected


def test_a_note_past_the_limit_is_422():
    with pytest.raises(HTTPException) as raised:
        form_note({"note": "x" * (MAX_NOTE_CHARS + 1)})
    assert raised.value.status_code == 422 and f"at most {MAX_NOTE_CHARS}" in str(raised.value.detail)
