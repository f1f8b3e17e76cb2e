"""The QR code printed on a presale permit (seed 004, task 3 (4) 3): the province's
encrypted blockchain string as a standard QR code, 25 × 25 mm in the certificate's
lower left corner, with the prompt below it in at least 6 pt.

PNG at 300 dpi: the symbol fills exactly 295 × 295 px (25 mm), whole pixels per module
(centred, the rest quiet zone), the caption in a strip below. SVG: the same symbol
25 mm wide, the caption as text. The caption is fixed text: nothing of the request
reaches the image but the chain string, encoded.
"""

from __future__ import annotations

import io
from pathlib import Path
from xml.sax.saxutils import escape

import segno
from PIL import Image, ImageDraw, ImageFont

CAPTION = "湘建云APP或湖南智慧住建公众号扫码查询"
DPI = 300
SIDE_MM = 25.0
SIDE_PX = round(SIDE_MM / 25.4 * DPI)  # 295
CAPTION_PT = 6.5  # the seed: "字号不小于 6pt"
CAPTION_PX = round(CAPTION_PT / 72 * DPI)
#: Where a CJK font for the caption is looked for (``numbering.caption_font`` first).
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
MAX_CHAIN = 2000


def find_font(configured: str | None = None) -> Path | None:
    """The caption's font: the configured file, else the first candidate present."""
    for candidate in ([configured] if configured else []) + list(FONT_CANDIDATES):
        path = Path(candidate)
        if path.is_file():
            return path
    return None


def _symbol(chain: str) -> segno.QRCode:
    if not chain or len(chain) > MAX_CHAIN:
        raise ValueError("a chain string of 1-2000 characters")
    return segno.make(chain, error="m", micro=False)


def fits(chain: str) -> bool:
    """Whether ``chain`` can be drawn as the certificate's code: at most 2000 characters
    that a QR code (error level M, version 40 at most) holds — 2000 ASCII characters do,
    2000 Chinese ones (three UTF-8 bytes each) do not."""
    try:
        _symbol(chain)
    except ValueError:  # segno's DataOverflowError among them
        return False
    return True


def png(chain: str, font: Path) -> bytes:
    """The certificate's QR code with its caption, as a 300-dpi PNG."""
    qr = _symbol(chain)
    modules = qr.symbol_size(scale=1, border=0)[0]
    scale = (SIDE_PX - 2 * 4) // (modules + 2)  # at least a 1-module quiet zone inside
    if scale < 1:
        raise ValueError("the chain string is too long for a 25 mm code at 300 dpi")
    raw = io.BytesIO()
    qr.save(raw, kind="png", scale=scale, border=0)
    symbol = Image.open(io.BytesIO(raw.getvalue())).convert("L")
    face = ImageFont.truetype(str(font), CAPTION_PX)
    left, top, right, bottom = face.getbbox(CAPTION)
    width = max(SIDE_PX, right - left + 2 * CAPTION_PX // 2)
    gap = CAPTION_PX // 3
    image = Image.new("L", (width, SIDE_PX + gap + (bottom - top) + gap), 255)
    qx = (width - SIDE_PX) // 2
    offset = (SIDE_PX - symbol.width) // 2
    image.paste(symbol, (qx + offset, offset))
    draw = ImageDraw.Draw(image)
    draw.rectangle([qx, 0, qx + SIDE_PX - 1, SIDE_PX - 1], outline=0, width=1)  # 边框
    draw.text(((width - (right - left)) // 2 - left, SIDE_PX + gap - top), CAPTION, font=face,
              fill=0)
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(DPI, DPI))
    return out.getvalue()


def svg(chain: str) -> bytes:
    """The same, as SVG in millimetres (the symbol 25 mm wide, the caption 6.5 pt)."""
    qr = _symbol(chain)
    side = qr.symbol_size(scale=1, border=4)[0]
    inner = io.BytesIO()
    qr.save(inner, kind="svg", xmldecl=False, svgns=False, nl=False, scale=1, border=4)
    caption_mm = CAPTION_PT * 25.4 / 72
    width = max(SIDE_MM, caption_mm * (len(CAPTION) + 1))
    height = SIDE_MM + caption_mm * 1.8
    x = (width - SIDE_MM) / 2
    doc = (
        f'<?xml version="1.0" encoding="utf-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.2f}mm" '
        f'height="{height:.2f}mm" viewBox="0 0 {width:.2f} {height:.2f}">'
        f'<rect width="100%" height="100%" fill="#fff"/>'
        f'<svg x="{x:.2f}" y="0" width="{SIDE_MM}" height="{SIDE_MM}" '
        f'viewBox="0 0 {side} {side}">{inner.getvalue().decode()}</svg>'
        f'<rect x="{x:.2f}" y="0" width="{SIDE_MM}" height="{SIDE_MM}" fill="none" '
        f'stroke="#000" stroke-width="0.1"/>'
        f'<text x="{width / 2:.2f}" y="{SIDE_MM + caption_mm * 1.3:.2f}" '
        f'font-size="{caption_mm:.2f}" text-anchor="middle" '
        f'font-family="SimSun, Songti SC, WenQuanYi Micro Hei, sans-serif">'
        f"{escape(CAPTION)}</text></svg>")
    return doc.encode("utf-8")
