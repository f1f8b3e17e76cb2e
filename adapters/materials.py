"""Materials as JPG for operators: PDF pages rendered, PNG converted, JPEG kept.

PDF rendering uses pypdfium2 (Apache-2.0/BSD); images use Pillow. The kind is decided by
content, never by the file name. Rendering is bounded whatever the store holds (a file
stored before the upload checks, or inserted by other means): an image's pixels are read
from its header before it is decoded, a PDF's page count and page sizes before any page
is rendered, and each page's bitmap is scaled down to ``max_render_pixels``; a material
past a bound is refused with MaterialError (the export reports it as not rendered).
"""

from __future__ import annotations

import io

from PIL import Image

from store.content import (
    PDFIUM_LOCK,
    ContentError,
    ContentLimits,
    open_image,
    pdf_pages,
    render_scale,
)

PDF_MAGIC = b"%PDF-"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
RENDER_DPI = 150
JPEG_QUALITY = 85


class MaterialError(ValueError):
    """The file is not a PDF, PNG or JPEG, cannot be read, or is past a bound."""


def kind_of(data: bytes) -> str | None:
    if data.startswith(PDF_MAGIC):
        return "pdf"
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    return None


def _shrunk(image: Image.Image, max_pixels: int) -> Image.Image:
    """The image reduced by a whole factor until it fits ``max_pixels``."""
    width, height = image.size
    factor = 1
    while (width // factor) * (height // factor) > max_pixels:
        factor += 1
    return image.reduce(factor) if factor > 1 else image


def _jpeg(image: Image.Image) -> bytes:
    if image.mode in ("RGBA", "LA", "P", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


def _pdf_pages(data: bytes, dpi: int, limits: ContentLimits) -> list[bytes]:
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:  # pdfium is not thread-safe (the admin page exports in a thread)
        sizes = pdf_pages(data, limits)  # count and sizes, before any page is rendered
        pdf = pdfium.PdfDocument(data)
        try:
            pages = []
            for index, (width, height) in enumerate(sizes):
                page = pdf[index]
                try:
                    bitmap = page.render(scale=render_scale(width, height, dpi, limits))
                    try:
                        pages.append(_jpeg(bitmap.to_pil()))
                    finally:
                        bitmap.close()
                except pdfium.PdfiumError as exc:
                    raise MaterialError(f"第 {index + 1} 页无法渲染 ({exc})") from None
                finally:
                    page.close()
            return pages
        finally:
            pdf.close()


def _image(data: bytes, limits: ContentLimits) -> bytes:
    with open_image(data, limits) as image:
        if image.format == "JPEG" and image.width * image.height <= limits.max_render_pixels:
            return data  # kept as it is
        if image.format == "JPEG":  # decoded at a fraction of its size (DCT scaling)
            f = (limits.max_render_pixels / (image.width * image.height)) ** 0.5
            image.draft("RGB", (max(1, int(image.width * f)), max(1, int(image.height * f))))
        image.load()
        return _jpeg(_shrunk(image, limits.max_render_pixels))


def to_jpegs(data: bytes, dpi: int = RENDER_DPI,
             limits: ContentLimits | None = None) -> list[bytes]:
    """One JPG per page (a PDF) or one JPG (an image), within ``limits``."""
    limits = limits or ContentLimits()
    kind = kind_of(data)
    try:
        if kind == "pdf":
            return _pdf_pages(data, dpi, limits)
        if kind in ("png", "jpeg"):
            return [_image(data, limits)]
    except (MaterialError, MemoryError):  # MemoryError: the job's limit says so (admin.jobs)
        raise
    except ContentError as exc:
        raise MaterialError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - whatever a hostile file does, the export goes on
        raise MaterialError(f"无法读取 (unreadable {kind}: {type(exc).__name__}: "
                            f"{str(exc)[:200]})") from None
    raise MaterialError("not a PDF, PNG or JPEG")
