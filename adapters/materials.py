"""Materials as JPG for operators: PDF pages rendered, PNG converted, JPEG kept.

PDF rendering uses pypdfium2 (Apache-2.0/BSD); images use Pillow, whose decompression
bomb guard stays on. The kind is decided by content, never by the file name.
"""

from __future__ import annotations

import io

from PIL import Image

PDF_MAGIC = b"%PDF-"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
RENDER_DPI = 150
MAX_PAGES = 100
JPEG_QUALITY = 85


class MaterialError(ValueError):
    """The file is not a PDF, PNG or JPEG, or cannot be read."""


def kind_of(data: bytes) -> str | None:
    if data.startswith(PDF_MAGIC):
        return "pdf"
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    return None


def _jpeg(image: Image.Image) -> bytes:
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


def _pdf_pages(data: bytes, dpi: int) -> list[bytes]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise MaterialError(f"unreadable PDF: {exc}") from exc
    try:
        if len(pdf) > MAX_PAGES:
            raise MaterialError(f"PDF has {len(pdf)} pages, more than {MAX_PAGES}")
        pages = []
        for index in range(len(pdf)):
            page = pdf[index]
            try:
                bitmap = page.render(scale=dpi / 72)
                pages.append(_jpeg(bitmap.to_pil()))
            finally:
                page.close()
        return pages
    finally:
        pdf.close()


def to_jpegs(data: bytes, dpi: int = RENDER_DPI) -> list[bytes]:
    """One JPG per page (a PDF) or one JPG (an image)."""
    kind = kind_of(data)
    if kind == "pdf":
        return _pdf_pages(data, dpi)
    if kind == "jpeg":
        return [data]
    if kind == "png":
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return [_jpeg(image)]
        except (OSError, Image.DecompressionBombError) as exc:
            raise MaterialError(f"unreadable PNG: {exc}") from exc
    raise MaterialError("not a PDF, PNG or JPEG")
