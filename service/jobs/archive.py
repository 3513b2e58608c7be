"""Zip archives of survey photos, read without trusting anything in them.

- Member names are data, never paths: nothing is extracted to disk; members are read
  into memory one at a time by their `ZipInfo`. A name that is absolute or climbs with
  `..` still refuses the whole archive, because no honest tool writes one.
- Zip bombs: the entry count is read from the end-of-central-directory record before
  `zipfile` parses the directory (a crafted directory can hold millions of entries), the
  directory's size is bounded too, and the declared unpacked sizes are summed. `zipfile`
  stops decompressing a member at its declared size (and the CRC check then fails), so
  declared sizes are real bounds.
- Members that are not usable photos (other files, encrypted, oversized, corrupt) are
  skipped with a reason; the rest of the archive is still analysed.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from service.jobs.errors import SurveyInputError

EOCD_SIGNATURE = b"PK\x05\x06"
ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
EOCD_SIZE = 22
ZIP64_LOCATOR_SIZE = 20
MAX_COMMENT = 65535
# A directory entry is 46 bytes plus name, extra field and comment; real ones stay well
# under this on average, crafted ones that pack in more entries than allowed do not.
MAX_DIRECTORY_BYTES_PER_ENTRY = 512
MAX_LABEL_CHARS = 200


@dataclass(frozen=True)
class ZipLimits:
    max_members: int
    max_member_bytes: int
    max_total_bytes: int


@dataclass(frozen=True)
class ZipMember:
    """One file entry, in a stable order (by name, then position in the archive)."""

    seq: int
    info: zipfile.ZipInfo
    label: str  # printable name for people; never a path
    skip_reason: str | None  # set when the member cannot be a usable photo without reading it


def display_label(name: str) -> str:
    """The member name with control characters escaped, cut to the column's width."""
    printable = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in name)
    return printable[:MAX_LABEL_CHARS]


def directory_entry_count(fh: BinaryIO) -> tuple[int, int]:
    """(entries, central directory bytes) from the end record, without parsing the directory."""
    fh.seek(0, 2)
    size = fh.tell()
    tail_len = min(size, EOCD_SIZE + MAX_COMMENT + ZIP64_LOCATOR_SIZE)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(EOCD_SIGNATURE)
    if pos < 0 or len(tail) - pos < EOCD_SIZE:
        raise SurveyInputError("not a readable zip archive: no end-of-central-directory record")
    _, _, _, _, entries, directory_bytes, _, _ = struct.unpack("<4s4H2LH", tail[pos : pos + EOCD_SIZE])
    if entries == 0xFFFF or directory_bytes == 0xFFFFFFFF:
        locator = tail[pos - ZIP64_LOCATOR_SIZE : pos] if pos >= ZIP64_LOCATOR_SIZE else b""
        if locator[:4] != ZIP64_LOCATOR_SIGNATURE:
            raise SurveyInputError("not a readable zip archive: ZIP64 sizes without a ZIP64 locator")
        _, _, record_offset, _ = struct.unpack("<4sLQL", locator)
        if record_offset > size - 56:
            raise SurveyInputError("not a readable zip archive: ZIP64 record outside the file")
        fh.seek(record_offset)
        record = fh.read(56)
        if record[:4] != ZIP64_EOCD_SIGNATURE:
            raise SurveyInputError("not a readable zip archive: broken ZIP64 end record")
        entries, directory_bytes = struct.unpack("<QQ", record[32:48])
    return int(entries), int(directory_bytes)


def _unsafe_name(name: str) -> bool:
    if not name or "\x00" in name:
        return True
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        return True  # absolute, or a Windows drive
    return ".." in PurePosixPath(unified).parts


def list_members(zf: zipfile.ZipFile, limits: ZipLimits) -> list[ZipMember]:
    """The archive's file entries in a stable order; SurveyInputError when the archive is refused."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise SurveyInputError(
            f"zip has {len(infos):,} entries, more than the {limits.max_members:,} allowed "
            "(PATROL_MAX_SURVEY_MEMBERS); split the survey"
        )
    for info in infos:
        if _unsafe_name(info.filename):
            raise SurveyInputError(
                f"zip member {display_label(info.filename)!r} has an absolute or '..' path; archives "
                "with such names are refused (names are never used as paths, but honest tools "
                "do not write them)"
            )
    files = [info for info in infos if not info.is_dir()]
    total = sum(info.file_size for info in files)
    if total > limits.max_total_bytes:
        raise SurveyInputError(
            f"zip members unpack to {total:,} bytes in all, more than the {limits.max_total_bytes:,} "
            "allowed (PATROL_MAX_SURVEY_UNCOMPRESSED_BYTES); a zip bomb, or split the survey"
        )
    if not files:
        raise SurveyInputError("zip archive holds no files")
    files.sort(key=lambda info: (info.filename, info.header_offset))
    members = []
    for seq, info in enumerate(files):
        reason = None
        if info.flag_bits & 0x1:
            reason = "encrypted member; upload photos without a password"
        elif info.file_size > limits.max_member_bytes:
            reason = (
                f"too_large: {info.file_size:,} bytes unpacked, more than the {limits.max_member_bytes:,} "
                "allowed per photo (PATROL_MAX_UPLOAD_BYTES)"
            )
        members.append(ZipMember(seq, info, display_label(info.filename), reason))
    return members


def open_archive(path: Path, limits: ZipLimits) -> tuple[zipfile.ZipFile, list[ZipMember]]:
    """Open and check an archive; the caller closes the ZipFile."""
    with path.open("rb") as fh:
        entries, directory_bytes = directory_entry_count(fh)
    if entries > limits.max_members:
        raise SurveyInputError(
            f"zip declares {entries:,} entries, more than the {limits.max_members:,} allowed "
            "(PATROL_MAX_SURVEY_MEMBERS); split the survey"
        )
    if directory_bytes > max(limits.max_members, 1) * MAX_DIRECTORY_BYTES_PER_ENTRY:
        raise SurveyInputError(
            f"zip central directory is {directory_bytes:,} bytes, too large for at most "
            f"{limits.max_members:,} entries; refused as a possible zip bomb"
        )
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise SurveyInputError(f"not a readable zip archive: {exc}") from None
    try:
        return zf, list_members(zf, limits)
    except BaseException:
        zf.close()
        raise


def read_member(zf: zipfile.ZipFile, member: ZipMember) -> bytes:
    """The member's bytes; SurveyInputError (for this member only) when they cannot be read."""
    try:
        with zf.open(member.info) as fh:
            data = fh.read(member.info.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        raise SurveyInputError(f"corrupt member: {exc}") from None
    if len(data) > member.info.file_size:  # defensive: zipfile stops at the declared size
        raise SurveyInputError("corrupt member: more data than its declared size")
    return data
