"""Checkpoints in safetensors (never pickle), written atomically, and image grids.

``save`` writes to a temporary file in the target's folder, fsyncs it, renames it over the
target (atomic on POSIX) and fsyncs the folder: an interrupted save leaves the old file intact.
Metadata (strings) records pixelforge's version, and a model's ``config`` (JSON) when the
module has one.
"""
from __future__ import annotations

import io as _io
import json
import os
import tempfile

import numpy as np
from PIL import Image, ImageDraw
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from . import __version__, _backend
from ._validate import integer
from .nn.module import Module
from .tensor import Tensor

__all__ = ["save", "load", "load_metadata", "save_image_grid", "save_loss_plot", "CheckpointError",
           "atomic_write"]


class CheckpointError(ValueError):
    """A checkpoint file that is truncated, corrupted or not safetensors."""


def _to_numpy_dict(obj):
    config = None
    if isinstance(obj, Module):
        config = getattr(obj, "config", None)
        obj = obj.state_dict()
    if not hasattr(obj, "items"):
        raise TypeError(f"module_or_state_dict: expected a pf.nn.Module or a mapping name -> array, "
                        f"got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            raise TypeError(f"module_or_state_dict: keys must be strings, got {type(k).__name__}")
        if isinstance(v, Tensor):
            v = v.data
        if not isinstance(v, np.ndarray):
            v = v.get() if _backend.is_cupy_array(v) else np.asarray(v)
        if v.dtype == object:
            raise TypeError(f"module_or_state_dict[{k!r}]: expected a numeric array, got {type(v).__name__}")
        out[k] = np.ascontiguousarray(v)
    return out, config


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save(module_or_state_dict, path, metadata=None) -> None:
    """Save a module's state dict (or a mapping name -> array) to ``path`` as safetensors.

    metadata: extra str -> str entries. Written: ``pixelforge_version``, and ``config`` (JSON)
    for a module with a ``config`` attribute.
    """
    tensors, config = _to_numpy_dict(module_or_state_dict)
    # safetensors stores tensors sorted by dtype and name; the state dict's order is kept here
    meta = {"format": "pixelforge", "pixelforge_version": __version__, "key_order": json.dumps(list(tensors))}
    if config is not None:
        meta["config"] = json.dumps(config, sort_keys=True, default=_json_default)
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"metadata: keys and values must be strings, got {k!r}: {type(v).__name__}")
        meta[k] = v
    atomic_write(path, st_save(tensors, metadata=meta))


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"config: {type(o).__name__} is not JSON serialisable")


def _read(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: no checkpoint at {path!r}")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise CheckpointError(f"{path}: truncated safetensors file ({len(data)} bytes, no header)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise CheckpointError(f"{path}: truncated or corrupted safetensors file (header says {header_len} bytes, "
                              f"file has {len(data) - 8} after the length)")
    try:
        header = json.loads(data[8:8 + header_len])
    except ValueError as e:
        raise CheckpointError(f"{path}: corrupted safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupted safetensors header (not a JSON object)")
    end = 0
    for k, v in header.items():
        if k == "__metadata__":
            continue
        try:
            end = max(end, int(v["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise CheckpointError(f"{path}: corrupted safetensors header entry {k!r}") from None
    if 8 + header_len + end > len(data):
        raise CheckpointError(f"{path}: truncated safetensors file (data ends at byte {8 + header_len + end}, "
                              f"file has {len(data)})")
    return data, header


def load(path) -> dict:
    """Read a safetensors checkpoint: dict name -> NumPy array (in the order it was saved).
    Raises FileNotFoundError, or :class:`CheckpointError` (a ValueError) for a truncated or
    corrupted file."""
    data, header = _read(path)
    try:
        out = dict(st_load(data))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type
        raise CheckpointError(f"{os.fspath(path)}: corrupted safetensors file ({e})") from None
    try:
        order = json.loads((header.get("__metadata__") or {}).get("key_order", "[]"))
    except ValueError:
        order = []
    if sorted(order) == sorted(out):
        out = {k: out[k] for k in order}
    return out


def load_metadata(path) -> dict:
    """The checkpoint's metadata (str -> str); ``config`` is decoded from JSON when present."""
    _, header = _read(path)
    meta = dict(header.get("__metadata__") or {})
    meta.pop("key_order", None)
    if "config" in meta:
        try:
            meta["config"] = json.loads(meta["config"])
        except ValueError:
            raise CheckpointError(f"{os.fspath(path)}: metadata 'config' is not valid JSON") from None
    return meta


def _scaled(images, name, scale):
    """Images (N, 1|3, H, W) as host float32, each pixel repeated scale x scale."""
    if isinstance(images, Tensor):
        images = images.numpy()
    a = np.asarray(_backend.to_host(images), dtype=np.float32)
    if a.ndim != 4 or a.shape[1] not in (1, 3) or a.shape[0] == 0:
        raise ValueError(f"{name}: expected (N, 1|3, H, W) with N >= 1, got shape {a.shape}")
    scale = integer(scale, "scale", min_value=1, wrong_type=ValueError)
    return np.kron(a, np.ones((1, 1, scale, scale), np.float32)) if scale > 1 else a


def save_image_grid(images, path, nrow=None, padding=1, scale=1) -> None:
    """Tile images (N, C, H, W) with values in [0, 1] (C = 1 or 3) into one PNG at ``path``.

    nrow: images per row (default ceil(sqrt(N))); scale: each pixel drawn scale x scale (small
    images stay visible). Written atomically.
    """
    a = _scaled(images, "images", scale)
    n, c, h, w = a.shape
    nrow = int(nrow) if nrow else int(np.ceil(np.sqrt(n)))
    if nrow < 1:
        raise ValueError(f"nrow: expected >= 1, got {nrow}")
    rows = -(-n // nrow)
    grid = np.zeros((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), np.float32)
    for i in range(n):
        r, q = divmod(i, nrow)
        y0, x0 = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, y0:y0 + h, x0:x0 + w] = a[i]
    img = (np.clip(np.nan_to_num(grid), 0, 1) * 255 + 0.5).astype(np.uint8)
    pil = Image.fromarray(img[0], "L") if c == 1 else Image.fromarray(img.transpose(1, 2, 0), "RGB")
    _save_png(pil, path)


def _save_png(pil, path):
    buf = _io.BytesIO()
    pil.save(buf, format="PNG")
    atomic_write(path, buf.getvalue())


def _open_image(source, mode, name):
    """A PIL image in ``mode`` from a path or a binary file object (the studio's uploads)."""
    what = os.fspath(source) if not hasattr(source, "read") else "the upload"
    try:
        with Image.open(source if hasattr(source, "read") else what) as im:
            im.load()
            return im.convert(mode)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"{name}: {what} is not a readable PNG/JPEG image ({e})") from None


def load_image(path, image_shape):
    """One PNG / JPEG (any size, grey or colour; a path or a binary file object) as float32
    (1, C, H, W) in [0, 1] for a model of ``image_shape``: converted to grey or RGB as C says
    and resized (box filter when shrinking, bilinear when enlarging). A file that is not a
    readable image is a ValueError."""
    c, h, w = (int(v) for v in image_shape)
    if c not in (1, 3):
        raise ValueError(f"image_shape: images have 1 or 3 channels, got {c}")
    pil = _open_image(path, "L" if c == 1 else "RGB", "path")
    if pil.size != (w, h):
        pil = pil.resize((w, h), Image.BOX if pil.size[0] > w else Image.BILINEAR)
    a = np.asarray(pil, np.float32) / 255.0
    return (a[None] if c == 1 else a.transpose(2, 0, 1))[None].copy()


def load_mask(path, image_shape):
    """A mask image (white = repaint, black = keep, as in AUTOMATIC1111; a path or a binary
    file object) resized to the model's H × W with nearest sampling: float32 (1, 1, H, W) of
    0 / 1 (grey levels split at 0.5)."""
    _, h, w = (int(v) for v in image_shape)
    pil = _open_image(path, "L", "mask")
    if pil.size != (w, h):
        pil = pil.resize((w, h), Image.NEAREST)
    return (np.asarray(pil, np.float32)[None, None] / 255.0 >= 0.5).astype(np.float32)


def save_gif(frames, path, scale=1, duration_ms=120) -> None:
    """Frames (N, C, H, W) in [0, 1] (C = 1 or 3) as a looping animated GIF, written atomically."""
    img = (np.clip(np.nan_to_num(_scaled(frames, "frames", scale)), 0, 1) * 255 + 0.5).astype(np.uint8)
    pils = [Image.fromarray(f[0], "L") if f.shape[0] == 1 else Image.fromarray(f.transpose(1, 2, 0), "RGB")
            for f in img]
    buf = _io.BytesIO()
    pils[0].save(buf, format="GIF", save_all=True, append_images=pils[1:], duration=int(duration_ms), loop=0)
    atomic_write(path, buf.getvalue())


def save_loss_plot(history, path, width=480, height=240) -> None:
    """The loss curves of a training history (name -> list of floats) as a PNG at ``path``
    (Pillow; matplotlib not needed). Written atomically."""
    curves = {k: np.asarray(v, np.float64) for k, v in history.items() if isinstance(v, list) and len(v) > 1}
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    colors = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    pad = 30
    for i, (name, v) in enumerate(curves.items()):
        k = max(1, len(v) // 200)  # smooth: mean over windows
        v = v[: len(v) // k * k].reshape(-1, k).mean(axis=1)
        lo, hi = float(np.min(v)), float(np.max(v))
        span = hi - lo or 1.0
        xs = pad + np.arange(len(v)) * (width - 2 * pad) / max(1, len(v) - 1)
        ys = height - pad - (v - lo) / span * (height - 2 * pad)
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=colors[i % 4], width=2)
        draw.text((pad + 110 * i, 8), f"{name} {v[-1]:.3g}", fill=colors[i % 4])
    draw.rectangle([pad, pad, width - pad, height - pad], outline=(180, 180, 180))
    _save_png(img, os.fspath(path))
