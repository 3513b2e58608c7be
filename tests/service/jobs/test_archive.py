"""Zip checks that need crafted archives: lying end records, oversized directories, per-member skips."""

from __future__ import annotations

import struct
import zipfile
from contextlib import nullcontext as does_not_raise

import pytest

from service.jobs.archive import ZipLimits, display_label, open_archive
from service.jobs.errors import SurveyInputError
from tests.service.jobs.surveys import zip_bytes

LIMITS = ZipLimits(max_members=3, max_member_bytes=1000, max_total_bytes=10_000)


def _patch_end_record(
    data: bytes, *, entries: int | None = None, directory_bytes: int | None = None
) -> bytes:
    pos = data.rfind(b"PK\x05\x06")
    record = bytearray(data[pos : pos + 22])
    if entries is not None:
        struct.pack_into("<HH", record, 8, entries, entries)
    if directory_bytes is not None:
        struct.pack_into("<L", record, 12, directory_bytes)
    return data[:pos] + bytes(record) + data[pos + 22 :]


def _encrypted_flag(data: bytes) -> bytes:
    """A zip whose member says it is encrypted (general-purpose flag bit 0), as password tools write."""
    raw = bytearray(zip_bytes([("secret.jpg", data)], compression=zipfile.ZIP_STORED))
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    raw[local + 6] |= 0x1
    raw[central + 8] |= 0x1
    return bytes(raw)


@pytest.mark.parametrize(
    ("data", "expectation"),
    [
        (zip_bytes([("a.jpg", b"x")]), does_not_raise()),
        # The end record claims one entry; the directory holds four: caught after parsing.
        (
            _patch_end_record(zip_bytes([(f"{i}.jpg", b"x") for i in range(4)]), entries=1),
            pytest.raises(SurveyInputError, match="4 entries, more than the 3 allowed"),
        ),
        # A directory far larger than three entries need: refused before zipfile parses it.
        (
            zip_bytes([("a" * 2000 + ".jpg", b"x")]),
            pytest.raises(SurveyInputError, match="central directory is .* too large"),
        ),
        (b"no end record here", pytest.raises(SurveyInputError, match="no end-of-central-directory")),
    ],
    ids=["ok", "lying-count", "huge-directory", "no-end-record"],
)
def test_archive_checks(tmp_path, data, expectation):
    path = tmp_path / "survey.zip"
    path.write_bytes(data)
    with expectation:
        zf, members = open_archive(path, LIMITS)
        zf.close()
        assert [m.label for m in members] == ["a.jpg"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_encrypted_flag(b"\xff\xd8\xff"), "encrypted member"),
        (zip_bytes([("big.jpg", b"\xff" * 5000)]), "too_large: 5,000 bytes unpacked"),
    ],
)
def test_members_that_cannot_be_photos_are_marked_before_reading(tmp_path, data, reason):
    path = tmp_path / "survey.zip"
    path.write_bytes(data)
    zf, members = open_archive(path, LIMITS)
    zf.close()
    assert len(members) == 1 and members[0].skip_reason.startswith(reason)


def test_member_names_are_shown_escaped_and_cut():
    assert display_label("DJI\x1b[2J_0001.JPG") == "DJI\\x1b[2J_0001.JPG"
    assert len(display_label("名" * 500)) == 200
