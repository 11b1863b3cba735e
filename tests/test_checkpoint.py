"""Resumable training: a fit resumed from a checkpoint ends with the same weights, bit for bit on
the CPU, as a fit never stopped — in process for every family, and across a SIGKILL at a random
moment; torn and corrupted checkpoints fall back to the previous one with a warning; Ctrl-C in
``pixelforge train`` writes a checkpoint and exits 130; argument and config mismatches are named."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import pixelforge as pf

IMAGES, LABELS = pf.data.load_digits()
CFG = {"gan": {}, "vae": {}, "transformer": {"d_model": 32, "layers": 1}, "diffusion": {"base": 8}}


def _fit(family, cond, steps=12, **kw):
    m = pf.models.create(family, (1, 8, 8), 10 if cond else None, **CFG[family])
    h = m.fit(IMAGES[:256], LABELS[:256] if cond else None, steps=steps, batch_size=16, progress=False, **kw)
    return m, h


def _equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("cond", [False, True], ids=["uncond", "cond"])
@pytest.mark.parametrize("family", list(CFG))
def test_resumed_fit_equals_an_uninterrupted_one(family, cond, tmp_path):
    ref, href = _fit(family, cond)
    _fit(family, cond, checkpoint_dir=tmp_path, checkpoint_every=4)
    names = sorted(p.name for p in tmp_path.glob("ckpt-*.safetensors"))
    assert names == ["ckpt-00000008.safetensors", "ckpt-00000012.safetensors"]   # the newest two kept
    (tmp_path / "ckpt-00000012.safetensors").unlink()                            # as if killed after step 8
    got, hgot = _fit(family, cond, checkpoint_dir=tmp_path, resume=True)
    assert _equal(ref, got) and got.steps_trained == 12 and hgot["steps"] == 12
    assert all(href[k] == hgot[k] for k in href if isinstance(href[k], list))
    np.testing.assert_array_equal(ref.sample(4, seed=1), got.sample(4, seed=1))


def test_corrupted_and_torn_checkpoints_fall_back_with_a_warning(tmp_path):
    ref, _ = _fit("gan", False)
    _fit("gan", False, checkpoint_dir=tmp_path, checkpoint_every=4)
    newest = tmp_path / "ckpt-00000012.safetensors"
    raw = bytearray(newest.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    newest.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match="ckpt-00000012.*checksum does not match"):
        got, _ = _fit("gan", False, checkpoint_dir=tmp_path, resume=True)
    assert _equal(ref, got)
    # torn: the checksum file never got written
    _fit("gan", False, checkpoint_dir=tmp_path / "b", checkpoint_every=4)
    (tmp_path / "b" / "ckpt-00000012.sha256").unlink()
    with pytest.warns(RuntimeWarning, match="checksum file is missing"):
        got, _ = _fit("gan", False, checkpoint_dir=tmp_path / "b", resume=True)
    assert _equal(ref, got)


def test_resume_without_checkpoints_starts_fresh_and_mismatches_are_named(tmp_path):
    ref, _ = _fit("vae", False)
    got, _ = _fit("vae", False, checkpoint_dir=tmp_path / "empty", resume=True)
    assert _equal(ref, got)
    _fit("vae", False, checkpoint_dir=tmp_path / "c", checkpoint_every=4)
    with pytest.raises(ValueError, match="steps=12"):
        _fit("vae", False, steps=20, checkpoint_dir=tmp_path / "c", resume=True)
    m = pf.models.create("vae", (1, 8, 8), lr=5e-3)
    with pytest.raises(ValueError, match="config differs in \\['lr'\\]"):
        m.fit(IMAGES[:256], steps=12, batch_size=16, progress=False, checkpoint_dir=tmp_path / "c", resume=True)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        _fit("vae", False, checkpoint_every=4)
    with pytest.raises(ValueError, match="checkpoint_every"):
        _fit("vae", False, checkpoint_dir=tmp_path, checkpoint_every=0)


_CHILD = r"""
import sys, numpy as np, pixelforge as pf
mode, folder, out = sys.argv[1], sys.argv[2], sys.argv[3]
images, _ = pf.data.load_digits()
m = pf.models.create("diffusion", (1, 8, 8), base=8)
kw = {} if mode == "plain" else dict(checkpoint_dir=folder, checkpoint_every=3, resume=(mode == "resume"))
m.fit(images[:512], steps=60, batch_size=16, progress=False, **kw)
np.savez(out, **m.state_dict())
"""


def _child(mode, folder, out):
    env = dict(os.environ)  # the pixelforge this test imports (installed, or PYTHONPATH in a checkout)
    return subprocess.Popen([sys.executable, "-c", _CHILD, mode, str(folder), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow  # child processes training (no C++ of their own: the sanitizer run skips it)
def test_sigkill_at_a_random_moment_then_resume_is_bit_identical(tmp_path):
    ref = _child("plain", tmp_path, tmp_path / "ref.npz")
    assert ref.wait(timeout=300) == 0, ref.stderr.read().decode()[-2000:]
    folder = tmp_path / "ck"
    victim = _child("ckpt", folder, tmp_path / "never.npz")
    deadline = time.time() + 120
    while not list(folder.glob("ckpt-*.sha256")) and time.time() < deadline and victim.poll() is None:
        time.sleep(0.01)
    time.sleep(float(np.random.default_rng().uniform(0.0, 0.3)))  # anywhere: mid-step, mid-write
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert not (tmp_path / "never.npz").exists(), "the run finished before the kill; nothing was tested"
    resumed = _child("resume", folder, tmp_path / "resumed.npz")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()[-2000:]
    a, b = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "resumed.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.slow  # child processes training (no C++ of their own: the sanitizer run skips it)
def test_ctrl_c_in_pixelforge_train_writes_a_checkpoint_and_exits_130(tmp_path):
    env = dict(os.environ)
    out = tmp_path / "run"
    steps = 2000
    cmd = [sys.executable, "-m", "pixelforge", "train", "vae", "--data", "digits", "--out", str(out),
           "--steps", str(steps), "--checkpoint-every", "200", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not list(out.glob("checkpoints/ckpt-*.sha256")):
        time.sleep(0.02)  # training runs once the first periodic checkpoint exists
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "--resume" in err.decode()
    ckpts = sorted((out / "checkpoints").glob("ckpt-*.safetensors"))
    assert ckpts, "no checkpoint written on Ctrl-C"
    step = int(ckpts[-1].stem.split("-")[1])
    assert 0 < step < steps
    meta = json.loads(pf.io.load_metadata(str(ckpts[-1]))["checkpoint"])
    assert meta["step"] == step and meta["plan"]["steps"] == steps
    done = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert pf.models.load(out).steps_trained == steps
