"""Real and hostile material files, made byte by byte (no fixtures on disk)."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib

from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png(width: int, height: int, noise: bool = False, mode: str = "RGB") -> bytes:
    """A valid PNG (random pixels with ``noise``, so it does not compress)."""
    bands = len(mode)
    pixels = os.urandom(width * height * bands) if noise else bytes(width * height * bands)
    out = io.BytesIO()
    Image.frombytes(mode, (width, height), pixels).save(out, "PNG")
    return out.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid RGB PNG of ``width x height`` black pixels: a few hundred KB that decode
    to ``3 * width * height`` bytes (its IDAT is compressed row by row)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = bytes(1 + 3 * width)  # filter byte + pixels
    parts = [packer.compress(row) for _ in range(height)]
    parts.append(packer.flush())
    idat = b"".join(parts)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))


def jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(
        out, "JPEG", quality=90)
    return out.getvalue()


def jpeg_with_comment(comment: bytes, width: int = 64, height: int = 48) -> bytes:
    """A valid JPEG whose COM segment (right after SOI) holds ``comment``."""
    data = jpeg(width, height)
    com = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    return data[:2] + com + data[2:]


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF of ``objects`` (numbered from 1, the first the catalog), xref and all."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, xref))
    return out.getvalue()


def pdf_pages(count: int, box: tuple[float, float] = (595, 842)) -> bytes:
    """A valid PDF of ``count`` empty pages of ``box`` points."""
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(count))
    page = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] /Resources << >> >>"
            % box)
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                 b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % count,
                 *[page] * count])


def pdf_image_bomb(width: int, height: int) -> bytes:
    """A one-page A4 PDF drawing a ``width x height`` black RGB image whose Flate stream
    (compressed row by row) inflates to ``3 * width * height`` bytes."""
    packer = zlib.compressobj(9)
    row = bytes(3 * width)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    content = b"q 595 0 0 842 0 0 cm /Im0 Do Q"
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
        b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n"
        % (width, height, len(pixels)) + pixels + b"\nendstream",
    ])


def zip_of(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(name, data)
    return out.getvalue()
