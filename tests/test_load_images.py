"""pf.data.load_images: folders of PNGs (labels from sub-folders), IDX (gzipped), .npz,
resizing to the model's image_shape, and bad files."""
import gzip

import numpy as np
import pytest

import pixelforge as pf


def _idx(path, arr, code=0x08):
    hdr = bytes([0, 0, code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(hdr + arr.tobytes())


@pytest.fixture
def imgs():
    g = np.random.default_rng(0)
    return (g.random((6, 8, 8)) * 255).astype(np.uint8), np.array([0, 1, 2, 0, 1, 2])


def test_npz_round_trip(tmp_path, imgs):
    a, y = imgs
    np.savez(tmp_path / "d.npz", images=a, labels=y)
    x, lab = pf.data.load_images(tmp_path / "d.npz", (1, 8, 8))
    assert x.shape == (6, 1, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], a / 255.0, atol=1e-6)
    np.testing.assert_array_equal(lab, y)
    x16, _ = pf.data.load_images(tmp_path / "d.npz", (1, 16, 16))
    assert x16.shape == (6, 1, 16, 16)
    # nearest-neighbour-like upsampling of a constant image stays constant
    np.savez(tmp_path / "c.npz", images=np.full((2, 4, 4), 128, np.uint8))
    c, _ = pf.data.load_images(tmp_path / "c.npz", (1, 8, 8))
    np.testing.assert_allclose(c, 128 / 255, atol=1e-6)


def test_idx_gz_with_labels(tmp_path, imgs):
    a, y = imgs
    _idx(tmp_path / "t10k-images-idx3-ubyte.gz", a)
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y.astype(np.uint8))
    x, lab = pf.data.load_images(tmp_path / "t10k-images-idx3-ubyte.gz", (1, 8, 8))
    np.testing.assert_allclose(x[:, 0], a / 255.0, atol=1e-6)
    np.testing.assert_array_equal(lab, y)


def test_folder_of_pngs(tmp_path, imgs):
    from PIL import Image
    a, y = imgs
    for i, (im, lab) in enumerate(zip(a, y)):
        d = tmp_path / f"class_{lab}"
        d.mkdir(exist_ok=True)
        Image.fromarray(im).save(d / f"{i}.png")
    x, lab = pf.data.load_images(tmp_path, (1, 8, 8))
    assert x.shape == (6, 1, 8, 8)
    assert sorted(lab.tolist()) == sorted(y.tolist())
    x3, _ = pf.data.load_images(tmp_path, (3, 4, 4))
    assert x3.shape == (6, 3, 4, 4)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        pf.data.load_images(tmp_path / "none.npz")
    np.savez(tmp_path / "e.npz", pictures=np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="images"):
        pf.data.load_images(tmp_path / "e.npz")
    (tmp_path / "x-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00\x00\x08")
    with pytest.raises(ValueError, match="path"):
        pf.data.load_images(tmp_path / "x-images-idx3-ubyte")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="path"):
        pf.data.load_images(tmp_path / "empty")
    with pytest.raises(ValueError, match="image_shape"):
        pf.data.load_images("digits", (8, 8))
