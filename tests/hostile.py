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


def pdf_pages(count: int, box: tuple[float, float] = (595, 842)) -> bytes:
    """A valid PDF of ``count`` empty pages of ``box`` points (xref and all)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % (3 + i) for i in range(count))
               + b"] /Count %d >>" % count]
    page = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] /Resources << >> >>"
            % box)
    objects += [page] * count
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


def zip_of(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(name, data)
    return out.getvalue()
