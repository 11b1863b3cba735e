"""The IDX format of MNIST-style datasets (big-endian header: two zero bytes, a type code, the
number of dimensions, one uint32 per dimension; then the values), gzipped or not."""
from __future__ import annotations

import gzip

import numpy as np

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """The array an IDX file holds (``.gz``: gzipped). ValueError naming the file when it is not
    IDX, has an unknown type code or is truncated."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # a bad gzip stream
        raise ValueError(f"path: {path} cannot be read as IDX ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"path: {path} is not an IDX file")
    code, ndim = data[2], data[3]
    if code not in _DTYPES or ndim < 1:
        raise ValueError(f"path: {path} has an unknown IDX type code {code:#x}")
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"path: {path} is truncated (header of {ndim} dims)")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=_DTYPES[code], offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"path: {path} is truncated ({body.size} values for shape {shape})")
    return body.reshape(shape)
