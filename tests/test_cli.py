"""The command line end to end on a tiny budget: train -> sample -> eval, and bad input."""
import json
import subprocess
import sys

import pytest


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "pixelforge.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_train_sample_eval(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    r = _run("train", "vae", "--data", "digits", "--out", str(out), "--steps", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    for name in ("model.safetensors", "loss.png", "samples.png"):
        assert (out / name).is_file(), name
    r = _run("sample", str(out), "--n", "9", "--out", str(tmp_path / "grid.png"), "--seed", "2")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "grid.png").stat().st_size > 0
    r = _run("eval", str(out), "--n", "40", "--json")
    assert r.returncode == 0, r.stderr
    q = json.loads(r.stdout)
    assert 0 <= q["confident"] <= 1 and 0 <= q["entropy"] <= 1 and q["frechet"] >= 0


def test_conditional_training_and_label(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "cond"
    r = _run("train", "gan", "--out", str(out), "--steps", "2", "--conditional", "--quiet")
    assert r.returncode == 0, r.stderr
    r = _run("sample", str(out), "--n", "4", "--label", "3", "--out", str(tmp_path / "g.png"))
    assert r.returncode == 0, r.stderr
    r = _run("sample", str(out), "--n", "4", "--label", "12", "--out", str(tmp_path / "g.png"))
    assert r.returncode == 2 and "labels" in r.stderr


def test_train_and_sample_in_bfloat16(tmp_path):
    """--precision bfloat16 trains and samples (mixed precision; float32 where the CPU lacks
    avx512_bf16); the saved weights are float32 either way."""
    pytest.importorskip("sklearn")
    out = tmp_path / "bf16"
    r = _run("train", "diffusion", "--out", str(out), "--steps", "2", "--quiet", "--precision", "bfloat16")
    assert r.returncode == 0, r.stderr
    r = _run("sample", str(out), "--n", "4", "--steps", "3", "--precision", "bfloat16", "--out",
             str(tmp_path / "s.png"))
    assert r.returncode == 0, r.stderr
    import pixelforge as pf
    state = pf.io.load(str(out / "model.safetensors"))
    assert all(v.dtype.name in ("float32", "int64", "int32") for v in state.values())
    r = _run("train", "vae", "--out", str(out), "--precision", "float16")
    assert r.returncode == 2 and "precision" in r.stderr


def test_errors(tmp_path):
    r = _run("sample", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "directory" in r.stderr
    r = _run("train", "gan", "--out", str(tmp_path / "x"), "--data", str(tmp_path / "missing.npz"))
    assert r.returncode == 2 and "path" in r.stderr
    r = _run("train", "flow", "--out", str(tmp_path / "x"))
    assert r.returncode != 0


def test_sample_guidance_flags(tmp_path):
    """--autoguidance sets the guide's scale (1: off) and equals the Python API's output;
    --guidance-scale reaches the model's own check."""
    pytest.importorskip("sklearn")
    import pixelforge as pf
    out = tmp_path / "ag"
    r = _run("train", "diffusion", "--out", str(out), "--steps", "4", "--quiet", "--config",
             json.dumps({"base": 8, "emb_dim": 16, "autoguidance": 2.0}))
    assert r.returncode == 0, r.stderr
    png = {}
    for name, extra in (("default", []), ("two", ["--autoguidance", "2"]), ("off", ["--autoguidance", "1"])):
        png[name] = tmp_path / f"{name}.png"
        r = _run("sample", str(out), "--n", "4", "--steps", "3", "--out", str(png[name]), *extra)
        assert r.returncode == 0, r.stderr
    read = {k: v.read_bytes() for k, v in png.items()}
    assert read["default"] == read["two"] and read["default"] != read["off"]
    m = pf.models.load(out)
    m.config["autoguidance"] = 1.0
    pf.io.save_image_grid(m.sample(4, seed=0, steps=3), tmp_path / "api.png", scale=4)
    assert (tmp_path / "api.png").read_bytes() == png["off"].read_bytes()
    r = _run("sample", str(out), "--n", "2", "--autoguidance", "-1", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "--autoguidance" in r.stderr
    r = _run("sample", str(out), "--n", "2", "--guidance-scale", "2", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "guidance_scale" in r.stderr
    plain = tmp_path / "plain"
    r = _run("train", "diffusion", "--out", str(plain), "--steps", "2", "--quiet", "--config", '{"base": 8}')
    assert r.returncode == 0, r.stderr
    r = _run("sample", str(plain), "--n", "2", "--autoguidance", "2", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "no guide network" in r.stderr
