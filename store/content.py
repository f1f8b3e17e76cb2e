"""What an uploaded material really is: decoded (Pillow, pypdfium2) within bounds.

The magic number only names a candidate type; the file is accepted when it decodes as
that type within the limits (pixels read from the header before any decoding, pages,
page size), carries nothing after its end and is not also another kind of file (a
polyglot), and its name's extension and declared type agree with the content.
"""

from __future__ import annotations

import io
import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", PDF), (b"\xff\xd8\xff", JPEG), (b"\x89PNG\r\n\x1a\n", PNG))
_EXTENSIONS = {PDF: {".pdf"}, JPEG: {".jpg", ".jpeg", ".jpe", ".jfif"}, PNG: {".png"}}
_ALIASES = {"image/jpg": JPEG, "image/pjpeg": JPEG, "image/x-png": PNG,
            "application/x-pdf": PDF}
#: Declared types that say nothing about the content.
_UNDECLARED = {"", "application/octet-stream", "binary/octet-stream",
               "application/x-www-form-urlencoded"}
_EXTENSION = re.compile(r"^\.[A-Za-z0-9]{1,5}$")
#: What a browser or reader would take as another format near the start of an image.
_FOREIGN_MARKERS = (b"%pdf-", b"<html", b"<script", b"<svg", b"<?php", b"<!doctype")
POINTS_PER_INCH = 72


@dataclass(frozen=True)
class ContentLimits:
    """Bounds on decoding (``limits.*`` in the config, see ``hub.Limits``)."""

    max_image_pixels: int = 25_000_000
    max_pdf_pages: int = 100
    max_pdf_page_points: int = 5000
    max_render_pixels: int = 16_000_000

    @classmethod
    def of(cls, limits: Any) -> ContentLimits:
        """The content limits of a ``hub.Limits`` (defaults for any it lacks)."""
        names = cls.__dataclass_fields__
        return cls(**{n: getattr(limits, n) for n in names if hasattr(limits, n)})


class ContentError(ValueError):
    """The content is not an acceptable PDF, JPEG or PNG; the message says why."""


def sniff(data: bytes) -> str | None:
    """The candidate type from the first bytes (not yet proof of anything)."""
    return next((t for magic, t in _MAGIC if data.startswith(magic)), None)


def check_claims(content_type: str, name: str | None, declared: str | None) -> None:
    """The name's extension and the declared type, where given, must match the content."""
    suffix = PurePosixPath((name or "").replace("\\", "/")).suffix
    if _EXTENSION.match(suffix) and suffix.lower() not in _EXTENSIONS[content_type]:
        raise ContentError(f"文件扩展名与内容不符 (the name ends in {suffix[:8]} but the "
                           f"content is {content_type})")
    claimed = (declared or "").split(";")[0].strip().lower()
    claimed = _ALIASES.get(claimed, claimed)
    if claimed not in _UNDECLARED and claimed != content_type:
        raise ContentError(f"声明的类型与内容不符 (declared {claimed[:64]} but the content "
                           f"is {content_type})")


def inspect(data: bytes, limits: ContentLimits) -> str:
    """The content type of ``data`` once decoded within ``limits``; ContentError if not."""
    content_type = sniff(data)
    if content_type is None:
        raise ContentError("only PDF, JPEG and PNG files are accepted (checked by content)")
    if _is_zip(data):
        raise ContentError("文件同时是 ZIP 压缩包 (a polyglot: also a ZIP archive)")
    if content_type == PDF:
        pdf_pages(data, limits)
        return PDF
    head = data[:1024].lower()
    marker = next((m for m in _FOREIGN_MARKERS if m in head), None)
    if marker is not None:
        raise ContentError(f"图片中含有其他格式的内容 (a polyglot: {marker.decode()!r} "
                           f"in the first 1024 bytes)")
    end = _png_end(data) if content_type == PNG else _jpegs_end(data)
    if data[end:].strip(b"\x00"):
        raise ContentError(f"图片结束后还有 {len(data) - end} 字节数据 "
                           f"(data after the end of the image)")
    decode_image(data, limits)
    return content_type


# --------------------------------------------------------------------------- images


def open_image(data: bytes, limits: ContentLimits) -> Any:
    """A Pillow image opened from its header, its pixels checked before any decoding."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))
    except Image.DecompressionBombError as exc:
        raise ContentError(f"图片像素过多 ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds on hostile input
        raise ContentError(f"无法读取图片 (unreadable image: {type(exc).__name__}: "
                           f"{str(exc)[:200]})") from None
    width, height = image.size
    if width < 1 or height < 1 or width * height > limits.max_image_pixels:
        image.close()
        raise ContentError(f"图片像素过多 ({width}x{height} pixels, more than "
                           f"{limits.max_image_pixels})")
    return image


def decode_image(data: bytes, limits: ContentLimits) -> None:
    """Decode every pixel (a truncated or corrupt image fails here)."""
    image = open_image(data, limits)
    try:
        image.load()
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds on hostile input
        raise ContentError(f"图片已损坏或不完整 (corrupt or truncated image: "
                           f"{type(exc).__name__}: {str(exc)[:200]})") from None
    finally:
        image.close()


def _png_end(data: bytes) -> int:
    """The offset just after the IEND chunk (walking the chunks and their lengths)."""
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        pos += 12 + length
        if kind == b"IEND":
            return pos
    raise ContentError("图片已损坏或不完整 (PNG without an IEND chunk)")


_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def _jpegs_end(data: bytes) -> int:
    """The end of the JPEG and of any JPEG right after it (an MPO's further pictures)."""
    end = _jpeg_end(data, 0)
    while data.startswith(b"\xff\xd8\xff", end):
        end = _jpeg_end(data, end)
    return end


def _jpeg_end(data: bytes, start: int) -> int:
    """The offset just after the EOI marker of the JPEG at ``start`` (walking segments
    and entropy-coded data)."""
    pos, size = start + 2, len(data)
    while pos + 1 < size:
        if data[pos] != 0xFF:
            raise ContentError("图片已损坏或不完整 (JPEG segment without a marker)")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return pos + 2
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > size:
            break
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xDA:  # entropy-coded data until a marker that is not RST or stuffing
            while pos + 1 < size:
                if data[pos] == 0xFF and data[pos + 1] not in (0x00, 0xFF, *range(0xD0, 0xD8)):
                    break
                pos += 1
    raise ContentError("图片已损坏或不完整 (JPEG without an end-of-image marker)")


def _is_zip(data: bytes) -> bool:
    if b"PK\x05\x06" not in data[-(65536 + 22):]:
        return False
    try:
        return zipfile.is_zipfile(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - any failure means "not a ZIP"
        return False


# --------------------------------------------------------------------------- PDF


#: PDFium is not thread-safe, not even across documents: every pdfium call in the
#: process (opening, sizing, rendering, closing) happens under this lock.
PDFIUM_LOCK = threading.RLock()


def pdf_pages(data: bytes, limits: ContentLimits) -> list[tuple[float, float]]:
    """Each page's size in points, the count and sizes checked against ``limits``."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise ContentError(f"无法读取 PDF (unreadable PDF: {exc})") from None
        try:
            return _page_sizes(pdf, limits)
        finally:
            pdf.close()


def _page_sizes(pdf: Any, limits: ContentLimits) -> list[tuple[float, float]]:
    import pypdfium2 as pdfium

    count = len(pdf)
    if count < 1:
        raise ContentError("PDF 没有页面 (a PDF without pages)")
    if count > limits.max_pdf_pages:
        raise ContentError(f"PDF 页数过多 ({count} pages, more than {limits.max_pdf_pages})")
    sizes = []
    for index in range(count):
        try:
            width, height = pdf.get_page_size(index)
            pdf[index].close()  # the page's dictionary parses
        except pdfium.PdfiumError as exc:
            raise ContentError(f"无法读取 PDF 第 {index + 1} 页 ({exc})") from None
        if not (0 < width <= limits.max_pdf_page_points
                and 0 < height <= limits.max_pdf_page_points):
            raise ContentError(
                f"PDF 第 {index + 1} 页尺寸超出范围 ({width:.0f}x{height:.0f} points, "
                f"at most {limits.max_pdf_page_points} a side)")
        sizes.append((width, height))
    return sizes


def render_scale(width: float, height: float, dpi: int, limits: ContentLimits) -> float:
    """The scale for a page at ``dpi``, lowered so its bitmap stays within the pixels."""
    scale = dpi / POINTS_PER_INCH
    pixels = width * scale * height * scale
    if pixels > limits.max_render_pixels:
        scale *= (limits.max_render_pixels / pixels) ** 0.5
    return scale
