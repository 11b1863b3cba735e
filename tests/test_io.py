"""pf.io: safetensors checkpoints (bitwise round trip, metadata, atomic replace that survives an
interrupted save, clear errors for truncated/corrupted files) and image grids."""
import json
import os

import numpy as np
import pytest

import pixelforge as pf
from pixelforge import io as pio
from pixelforge import nn


class Small(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.config = {"width": width, "act": "silu", "shape": (1, 8, 8)}
        self.lin = nn.Linear(3, width)
        self.norm = nn.GroupNorm(2, width)
        self.register_buffer("steps", np.array([7], np.int64))

    def forward(self, x):
        return self.norm(self.lin(x))


def test_module_round_trip_bitwise(tmp_path):
    m = Small()
    path = tmp_path / "m.safetensors"
    pio.save(m, path)
    sd = pio.load(path)
    assert list(sd) == list(m.state_dict())
    for k, v in m.state_dict().items():
        assert sd[k].dtype == v.dtype and sd[k].shape == v.shape
        assert sd[k].tobytes() == v.tobytes(), k
    m2 = Small()
    m2.load_state_dict(sd)
    for k, v in m.state_dict().items():
        assert m2.state_dict()[k].tobytes() == v.tobytes()
    meta = pio.load_metadata(path)
    assert meta["pixelforge_version"] == pf.__version__
    assert meta["config"] == {"width": 4, "act": "silu", "shape": [1, 8, 8]}


def test_state_dict_of_mixed_arrays(tmp_path):
    g = np.random.default_rng(0)
    sd = {"a": g.standard_normal((2, 3)).astype(np.float32), "b": g.standard_normal(5),
          "c": np.arange(4, dtype=np.int64), "d": g.standard_normal((1, 1)).astype(np.float16),
          "t": pf.Tensor(np.ones(2, np.float32), requires_grad=True), "e": np.zeros((0, 3), np.float32),
          "nc": g.standard_normal((4, 4)).astype(np.float32)[:, ::2]}
    pio.save(sd, tmp_path / "x.safetensors", metadata={"note": "hi"})
    back = pio.load(tmp_path / "x.safetensors")
    for k, v in sd.items():
        v = v.data if isinstance(v, pf.Tensor) else v
        np.testing.assert_array_equal(back[k], v)
        assert back[k].dtype == v.dtype
    assert pio.load_metadata(tmp_path / "x.safetensors")["note"] == "hi"


def test_file_is_safetensors_not_pickle(tmp_path):
    pio.save({"w": np.ones(3, np.float32)}, tmp_path / "w.safetensors")
    raw = (tmp_path / "w.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    assert header["w"]["dtype"] == "F32" and "__metadata__" in header
    from safetensors.numpy import load_file
    np.testing.assert_array_equal(load_file(str(tmp_path / "w.safetensors"))["w"], np.ones(3))


def test_interrupted_save_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    old = {"w": np.arange(1000, dtype=np.float32)}
    pio.save(old, path)
    before = path.read_bytes()

    real_fdopen = os.fdopen

    class HalfWriter:
        """A file that writes half of the data, then the process 'dies'."""

        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            raise KeyboardInterrupt("killed half-way through the save")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(pio.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    with pytest.raises(KeyboardInterrupt):
        pio.save({"w": np.zeros(5000, np.float32)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    np.testing.assert_array_equal(pio.load(path)["w"], old["w"])
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]  # no temporary file left behind

    # a failure at the rename step also leaves the old file
    def boom(*a):
        raise OSError("disk gone")
    monkeypatch.setattr(pio.os, "replace", boom)
    with pytest.raises(OSError, match="disk gone"):
        pio.save({"w": np.zeros(3, np.float32)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.safetensors"]


@pytest.mark.parametrize("cut", [0, 5, 20, -1, -100])
def test_truncated_file_clear_error(tmp_path, cut):
    path = tmp_path / "t.safetensors"
    pio.save({"w": np.arange(100, dtype=np.float32)}, path)
    raw = path.read_bytes()
    path.write_bytes(raw[:cut] if cut >= 0 else raw[:len(raw) + cut])
    with pytest.raises(pio.CheckpointError, match="truncated"):
        pio.load(path)


def test_corrupted_file_clear_error(tmp_path):
    path = tmp_path / "c.safetensors"
    pio.save({"w": np.arange(10, dtype=np.float32)}, path)
    raw = bytearray(path.read_bytes())
    raw[9] = ord("#")  # breaks the JSON header
    path.write_bytes(bytes(raw))
    with pytest.raises(pio.CheckpointError, match="corrupted"):
        pio.load(path)
    path.write_bytes(b"\x80\x04\x95 not a safetensors file at all")
    with pytest.raises(pio.CheckpointError):
        pio.load(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        pio.load(tmp_path / "missing.safetensors")


def test_save_errors(tmp_path):
    with pytest.raises(TypeError, match="module_or_state_dict"):
        pio.save([1, 2, 3], tmp_path / "x")
    with pytest.raises(TypeError, match="keys"):
        pio.save({1: np.ones(2)}, tmp_path / "x")
    with pytest.raises(TypeError, match="metadata"):
        pio.save({"a": np.ones(2)}, tmp_path / "x", metadata={"k": 3})


def test_loaded_checkpoint_into_wrong_model_says_what_differs(tmp_path):
    pio.save(Small(4), tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match=r"lin\.weight: shape \(4, 3\) in the state dict, \(6, 3\) in the model"):
        Small(6).load_state_dict(pio.load(tmp_path / "a.safetensors"))


def test_save_image_grid(tmp_path):
    from PIL import Image
    imgs = np.random.default_rng(0).random((5, 1, 8, 8)).astype(np.float32)
    pio.save_image_grid(imgs, tmp_path / "g.png", nrow=3)
    im = Image.open(tmp_path / "g.png")
    assert im.size == (3 * 9 + 1, 2 * 9 + 1) and im.mode == "L"
    a = np.asarray(im)
    np.testing.assert_array_equal(a[1:9, 1:9], (imgs[0, 0] * 255 + 0.5).astype(np.uint8))
    pio.save_image_grid(np.ones((2, 3, 4, 4)), tmp_path / "rgb.png")
    assert Image.open(tmp_path / "rgb.png").mode == "RGB"
    with pytest.raises(ValueError, match="images"):
        pio.save_image_grid(np.ones((2, 2, 4, 4)), tmp_path / "bad.png")
