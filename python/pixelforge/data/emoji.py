"""Colour emoji at small sizes: every single-code-point emoji of Noto Color Emoji (Google, SIL
Open Font Licence; Debian ``fonts-noto-color-emoji``) rendered with Pillow onto white, scaled to
size x size. Rendered once per (font, size) and cached under pixelforge's cache folder.

Which code points: the blocks where Unicode's emoji live (Misc Symbols and Pictographs,
Emoticons, Transport, Supplemental Symbols, Symbols and Pictographs Extended-A, Misc Symbols,
Dingbats, enclosed alphanumerics, arrows, technical and geometric symbols, and a few singles) that have a Unicode name in this Python and a glyph in the font (a code point the
font lacks renders blank or as the font's ".notdef" box; both are skipped). Sequences (flags,
skin tones, ZWJ families) are not single code points and are left out.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import unicodedata

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .._cache import cache_dir

DEBIAN_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
_RANGES = ((0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),
           (0x1FA70, 0x1FAFF), (0x2600, 0x26FF), (0x2700, 0x27BF), (0x1F000, 0x1F0FF), (0x1F170, 0x1F251),
           (0x2190, 0x21FF), (0x2300, 0x23FF), (0x25A0, 0x25FF), (0x2900, 0x297F), (0x2B00, 0x2BFF),
           (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297), (0x3299, 0x3299), (0x00A9, 0x00A9),
           (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122), (0x2139, 0x2139),
           (0x24C2, 0x24C2))
_PX = 109          # Noto Color Emoji's bitmap strike: the one size Pillow can render it at
_CACHE_VERSION = 1


def _font_path(font):
    p = pathlib.Path(os.fspath(font)) if font is not None else pathlib.Path(
        os.environ.get("PIXELFORGE_EMOJI_FONT", DEBIAN_FONT))
    if not p.is_file():
        raise FileNotFoundError(
            f"font: {p} not found. Install Noto Color Emoji (`apt-get install fonts-noto-color-emoji`, files in "
            f"{DEBIAN_FONT}) or pass font=PATH to a TrueType emoji font (or set PIXELFORGE_EMOJI_FONT)")
    return p


def _render(font_path, size):
    try:
        f = ImageFont.truetype(os.fspath(font_path), _PX)
    except OSError as e:
        raise ValueError(f"font: {font_path} is not a readable TrueType/OpenType font ({e})") from None
    box = 136  # a 109 px emoji is up to 136 x 128 px

    def draw(ch):
        im = Image.new("RGB", (box, box), "white")
        try:
            ImageDraw.Draw(im).text((box // 2, box // 2), ch, font=f, fill="black", embedded_color=True, anchor="mm")
        except (OSError, ValueError):
            return None
        return np.asarray(im)

    notdef = draw(chr(0xE000))  # a private-use code point: what a missing glyph looks like
    images, names = [], []
    for lo, hi in _RANGES:
        for cp in range(lo, hi + 1):
            name = unicodedata.name(chr(cp), "")
            if not name:
                continue
            a = draw(chr(cp))
            if a is None or a.min() == 255 or (notdef is not None and np.array_equal(a, notdef)):
                continue
            pil = Image.fromarray(a).resize((size, size), Image.LANCZOS)
            images.append(np.asarray(pil, np.uint8))
            names.append(name)
    if not images:
        raise ValueError(f"font: {font_path} has no glyphs for the emoji code points")
    return np.stack(images), names


def load_emoji(size=32, *, font=None):
    """``(images float32 (N, 3, size, size) in [0, 1] on white, names list[str])``: the font's
    single-code-point emoji (about 1,400 for Noto Color Emoji) with their Unicode names. font:
    a TrueType file (default ``$PIXELFORGE_EMOJI_FONT`` or Debian's Noto Color Emoji)."""
    if isinstance(size, bool) or not isinstance(size, int) or not 4 <= size <= 512:
        raise ValueError(f"size: expected an int in [4, 512], got {size!r}")
    fp = _font_path(font)
    st = fp.stat()
    key = hashlib.sha256(f"{_CACHE_VERSION}|{fp.resolve()}|{st.st_size}|{st.st_mtime_ns}|{size}".encode()).hexdigest()
    path = cache_dir() / f"emoji-{size}-{key[:16]}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                return (z["images"].astype(np.float32) / 255.0).transpose(0, 3, 1, 2).copy(), list(z["names"])
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file: render again
    u8, names = _render(fp, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, images=u8, names=np.array(names))
    os.replace(tmp, path)
    return (u8.astype(np.float32) / 255.0).transpose(0, 3, 1, 2).copy(), names
