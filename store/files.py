"""Uploaded materials (申请材料): PDF, JPEG and PNG only, recognised by their content
(decoded within bounds: ``store.content``).

Each file is sealed with the hub's data cipher in the ``files`` table, with its SHA-256
(of the plain bytes) so a county or an auditor can check what it received.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from store import content
from store.crypto import DataCipher
from store.models import StoredFile

MAX_NAME = 255


class FileRejected(ValueError):
    """The upload is refused; ``reason`` says why (for the ``errors`` list)."""

    def __init__(self, reason: str, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large


sniff = content.sniff


@dataclass(frozen=True)
class FileInfo:
    file_id: str
    sha256: str
    content_type: str
    size: int
    name: str
    apply_no: str | None
    county_code: str | None


def _info(row: StoredFile) -> FileInfo:
    return FileInfo(row.file_id, row.sha256, row.content_type, row.size, row.name,
                    row.apply_no, row.county_code)


def check(data: bytes, max_bytes: int, limits: content.ContentLimits | None = None,
          name: str | None = None, declared: str | None = None) -> str:
    """The content type of an acceptable upload (decoded within ``limits``, its name's
    extension and ``declared`` type agreeing with it); raise FileRejected otherwise."""
    if not data:
        raise FileRejected("the file is empty")
    if len(data) > max_bytes:
        raise FileRejected(f"larger than {max_bytes} bytes", too_large=True)
    try:
        content_type = content.inspect(data, limits or content.ContentLimits())
        content.check_claims(content_type, name, declared)
    except content.ContentError as exc:
        raise FileRejected(str(exc)) from None
    return content_type


def save(session: Session, cipher: DataCipher, data: bytes, name: str, *, max_bytes: int,
         apply_no: str | None = None, county_code: str | None = None,
         uploaded_by: str | None = None, limits: content.ContentLimits | None = None,
         checked: str | None = None) -> FileInfo:
    """Check and store one material (in the caller's transaction); ``checked`` is the
    type ``check`` already returned for these very bytes (not decoded a second time)."""
    content_type = checked or check(data, max_bytes, limits, name)
    row = StoredFile(
        file_id=secrets.token_hex(16), sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type, size=len(data), name=(name or "material")[:MAX_NAME],
        apply_no=apply_no, county_code=county_code, uploaded_by=uploaded_by,
        data_enc=cipher.seal(data),
    )
    session.add(row)
    session.flush()
    return _info(row)


def info(session: Session, file_id: str) -> FileInfo | None:
    row = session.scalars(select(StoredFile).where(StoredFile.file_id == file_id)).first()
    return None if row is None else _info(row)


def infos(session: Session, file_ids: list[str]) -> dict[str, FileInfo]:
    if not file_ids:
        return {}
    rows = session.scalars(select(StoredFile).where(StoredFile.file_id.in_(file_ids)))
    return {r.file_id: _info(r) for r in rows}


def load(session: Session, cipher: DataCipher, file_id: str) -> tuple[FileInfo, bytes] | None:
    """The file's metadata and plain bytes, or None if there is no such file."""
    row = session.scalars(select(StoredFile).where(StoredFile.file_id == file_id)).first()
    if row is None:
        return None
    return _info(row), cipher.open(row.data_enc)
