"""PNG in and out of the studio: uploads checked before decoding (size, format, pixel count),
results encoded as PNG with their settings in a text chunk (so a dropped PNG restores them)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json

import numpy as np
from PIL import Image, PngImagePlugin

from .. import io as pfio

MAX_UPLOAD_BYTES = 4 * 1024 * 1024       # decoded
MAX_UPLOAD_PIXELS = 4096 * 4096          # a decompression bomb stops here, before decoding
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
SETTINGS_KEY = "pixelforge"              # the PNG tEXt chunk that carries the settings


class UploadError(ValueError):
    """A bad upload; ``status`` is the HTTP status it deserves (400 or 413)."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def decode_upload(b64: str, name: str) -> bytes:
    """The bytes of a base64 image (plain or a ``data:image/...;base64,`` URL), checked: at most
    MAX_UPLOAD_BYTES, one of FORMATS, at most MAX_UPLOAD_PIXELS."""
    if b64.startswith("data:"):
        head, sep, b64 = b64.partition(",")
        if not sep or not head.endswith(";base64"):
            raise UploadError(f"{name}: a data URL must be base64 (data:image/png;base64,...)")
    if len(b64) > (MAX_UPLOAD_BYTES * 4) // 3 + 8:
        raise UploadError(f"{name}: larger than {MAX_UPLOAD_BYTES // 2**20} MB", 413)
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError(f"{name}: not valid base64") from None
    if len(raw) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{name}: larger than {MAX_UPLOAD_BYTES // 2**20} MB", 413)
    try:
        with Image.open(io.BytesIO(raw)) as im:      # reads the header only
            fmt, (w, h) = im.format, im.size
    except (OSError, ValueError, Image.DecompressionBombError):
        raise UploadError(f"{name}: not an image (expected {', '.join(FORMATS)})") from None
    if fmt not in FORMATS:
        raise UploadError(f"{name}: {fmt} images are not accepted (expected {', '.join(FORMATS)})")
    if w * h > MAX_UPLOAD_PIXELS:
        raise UploadError(f"{name}: {w}x{h} pixels is more than {MAX_UPLOAD_PIXELS} pixels")
    return raw


def upload(b64: str, image_shape, name="image") -> tuple[np.ndarray, str]:
    """(the upload for a model of ``image_shape``, sha256 of its bytes). name "image": float32
    (1, C, H, W) in [0, 1] as io.load_image makes it; name "mask": float32 (1, 1, H, W) of 0/1,
    white = regenerate, as io.load_mask makes it."""
    raw = decode_upload(b64, name)
    load = pfio.load_mask if name == "mask" else pfio.load_image
    try:
        x = load(io.BytesIO(raw), image_shape)
    except ValueError as e:
        raise UploadError(f"{name}: {e}") from None
    return x, hashlib.sha256(raw).hexdigest()


def to_uint8(image) -> np.ndarray:
    """One image (C, H, W) in [0, 1] as (H, W) or (H, W, 3) uint8."""
    a = np.clip(np.nan_to_num(np.asarray(image, np.float32)), 0.0, 1.0)
    a = (a * 255.0 + 0.5).astype(np.uint8)
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def png_b64(image, settings=None) -> str:
    """One image (C, H, W) in [0, 1] as base64 PNG; ``settings`` go into its text chunk."""
    info = None
    if settings is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text(SETTINGS_KEY, json.dumps(settings, sort_keys=True))
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG", pnginfo=info)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def png_settings(b64: str) -> dict | None:
    """The settings a studio PNG carries (None when it carries none)."""
    raw = decode_upload(b64, "image")
    with Image.open(io.BytesIO(raw)) as im:
        text = getattr(im, "text", {}).get(SETTINGS_KEY) if im.format == "PNG" else None
    if text is None:
        return None
    try:
        settings = json.loads(text)
    except ValueError:
        return None
    return settings if isinstance(settings, dict) else None
