"""Real datasets without downloads: Fashion-MNIST from IDX files (small ones written here, the
real set where Debian's dataset-fashion-mnist is installed), emoji rendered from a font (Noto
Color Emoji where installed, DejaVu's monochrome symbols otherwise), load_data's shapes, the
CLI's --data, the families at 28x28 grey and 32x32 colour, and the named errors."""
from __future__ import annotations

import gzip
import os
import pathlib

import numpy as np
import pytest

import pixelforge as pf
from pixelforge.data import emoji as emoji_mod
from pixelforge.data import fashion_mnist as fm

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _idx(a):
    code = {np.uint8: 0x08}[a.dtype.type]
    head = bytes([0, 0, code, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
    return head + a.tobytes()


def _write_set(folder, n_train=5, n_test=3, gz=True, seed=0):
    g = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, stem, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = g.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = g.integers(0, 10, n).astype(np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            name = f"{stem}-{kind}-ubyte" + (".gz" if gz else "")
            data = _idx(arr)
            (folder / name).write_bytes(gzip.compress(data) if gz else data)
        out[split] = (x, y)
    return out


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
def test_fashion_mnist_reads_idx_files_from_path_and_env(tmp_path, monkeypatch, gz):
    want = _write_set(tmp_path / "fashion-mnist", gz=gz)
    for split in ("train", "test"):
        x, y = pf.data.load_fashion_mnist(split, path=tmp_path / "fashion-mnist")
        assert x.dtype == np.float32 and x.shape == (len(want[split][0]), 1, 28, 28) and y.dtype == np.int64
        np.testing.assert_array_equal(x[:, 0], want[split][0] / np.float32(255))
        np.testing.assert_array_equal(y, want[split][1])
    monkeypatch.setenv("PIXELFORGE_DATA", str(tmp_path))
    x, _ = pf.data.load_fashion_mnist("test")
    np.testing.assert_array_equal(x[:, 0], want["test"][0] / np.float32(255))


def test_fashion_mnist_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELFORGE_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(fm, "DEBIAN_DIR", str(tmp_path / "also-nowhere"))
    with pytest.raises(FileNotFoundError) as e:
        pf.data.load_fashion_mnist("train")
    assert "apt-get install dataset-fashion-mnist" in str(e.value) and "path=" in str(e.value)
    with pytest.raises(ValueError, match="split"):
        pf.data.load_fashion_mnist("validation", path=tmp_path)
    folder = tmp_path / "broken"
    _write_set(folder, gz=False)
    (folder / "train-images-idx3-ubyte").write_bytes((folder / "train-images-idx3-ubyte").read_bytes()[:500])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*truncated"):
        pf.data.load_fashion_mnist("train", path=folder)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.zeros(7, np.uint8)))
    with pytest.raises(ValueError, match="labels"):
        pf.data.load_fashion_mnist("test", path=folder)


def test_fashion_mnist_real_set_when_installed():
    if not pathlib.Path(fm.DEBIAN_DIR, "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist is not installed")
    x, y = pf.data.load_fashion_mnist("train")
    assert x.shape == (60000, 1, 28, 28) and np.array_equal(np.bincount(y), np.full(10, 6000))
    xt, yt = pf.data.load_fashion_mnist("test")
    assert xt.shape == (10000, 1, 28, 28) and np.array_equal(np.bincount(yt), np.full(10, 1000))
    assert 0.0 == x.min() and x.max() == 1.0
    assert pf.data.CLASSES["fashion-mnist"][yt[0]] == "Ankle boot"   # the test set's first image
    small, _ = pf.data.load_data("fashion-mnist", (1, 14, 14))
    assert small.shape == (60000, 1, 14, 14)


def test_classes():
    assert len(pf.data.CLASSES["fashion-mnist"]) == 10 and pf.data.CLASSES["fashion-mnist"][9] == "Ankle boot"
    assert pf.data.CLASSES["digits"] == tuple("0123456789")


def test_emoji_from_the_real_font(tmp_path, monkeypatch):
    if not os.path.exists(emoji_mod.DEBIAN_FONT):
        pytest.skip("fonts-noto-color-emoji is not installed")
    monkeypatch.setenv("PIXELFORGE_CACHE", str(tmp_path))
    x, names = pf.data.load_emoji(32)
    assert x.shape[1:] == (3, 32, 32) and 1200 <= len(x) <= 1600 and len(names) == len(x)
    assert "GRINNING FACE" in names and x.dtype == np.float32
    corners = x[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners > 0.95).mean() > 0.9                      # on white
    colour = np.abs(x[:, 0] - x[:, 1]).mean(axis=(1, 2))
    assert (colour > 0.02).mean() > 0.8                       # colour, not grey
    cached = list(tmp_path.glob("emoji-32-*.npz"))
    assert len(cached) == 1
    x2, names2 = pf.data.load_emoji(32)                       # from the cache
    assert np.array_equal(x, x2) and names == names2
    x16, _ = pf.data.load_emoji(16)
    assert x16.shape == (len(x), 3, 16, 16)


def test_emoji_from_another_font_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELFORGE_CACHE", str(tmp_path))
    if os.path.exists(DEJAVU):  # monochrome symbols (sun, stars, arrows...) render too
        x, names = pf.data.load_emoji(16, font=DEJAVU)
        assert x.shape[1:] == (3, 16, 16) and len(x) > 50 and "BLACK SUN WITH RAYS" in names
    bad = tmp_path / "bad.ttf"
    bad.write_bytes(b"this is not a font")
    with pytest.raises(ValueError, match="bad.ttf"):
        pf.data.load_emoji(32, font=bad)
    with pytest.raises(FileNotFoundError, match="fonts-noto-color-emoji"):
        pf.data.load_emoji(32, font=tmp_path / "missing.ttf")
    with pytest.raises(ValueError, match="size"):
        pf.data.load_emoji(2, font=bad)


# ----------------------------------------------------------------------------- families at real sizes
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)], ids=["28x28-grey", "32x32-colour"])
@pytest.mark.parametrize("family", ["gan", "vae", "diffusion", "transformer"])
def test_families_train_and_sample_at_real_sizes(family, shape):
    g = np.random.default_rng(0)
    x = g.random((32, *shape)).astype(np.float32)
    cfg = {"d_model": 16, "layers": 1, "heads": 2} if family == "transformer" else {}
    m = pf.models.create(family, shape, **cfg)
    hist = m.fit(x, steps=2, batch_size=8, progress=False)
    assert all(np.isfinite(v).all() for v in hist.values() if isinstance(v, list))
    kw = {"steps": 3} if family == "diffusion" else {}
    s = m.sample(2, seed=0, **kw)
    assert s.shape == (2, *shape) and s.dtype == np.float32 and 0 <= s.min() and s.max() <= 1


def test_shape_and_data_errors():
    with pytest.raises(ValueError, match="multiples of 4"):
        pf.models.create("gan", (1, 30, 30))
    m = pf.models.create("vae", (3, 32, 32))
    with pytest.raises(ValueError, match="images"):
        m.fit(np.zeros((8, 1, 32, 32), np.float32), steps=1)


def test_cli_train_follows_the_data_shape(tmp_path, monkeypatch):
    from pixelforge import cli
    folder = tmp_path / "fashion-mnist"
    _write_set(folder, n_train=40, n_test=4)
    monkeypatch.setenv("PIXELFORGE_DATA", str(tmp_path))
    run = tmp_path / "run"
    assert cli.main(["train", "vae", "--data", "fashion-mnist", "--out", str(run), "--steps", "2", "--quiet",
                     "--conditional"]) == 0
    m = pf.models.load(run)
    assert m.image_shape == (1, 28, 28) and m.num_classes == 10
    run2 = tmp_path / "run2"
    assert cli.main(["train", "gan", "--data", "fashion-mnist", "--image-shape", "1", "16", "16", "--out",
                     str(run2), "--steps", "1", "--quiet"]) == 0
    assert pf.models.load(run2).image_shape == (1, 16, 16)
