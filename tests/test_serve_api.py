"""pixelforge studio's JSON API, in-process: every endpoint against the library called
directly with the same settings, every validation error, the queue limit, cancel, the token on
a non-loopback bind. (The page in a real browser: test_serve_browser.py; load: test_serve_load.py.)"""
import base64
import io
import json
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the studio needs the serve extra: pip install 'pixelforge[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx (the test extra)")
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

import pixelforge as pf  # noqa: E402
from pixelforge import serve  # noqa: E402
from pixelforge.serve import images as pimg  # noqa: E402
from pixelforge.serve.runs import Run, load_runs  # noqa: E402

BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def run_dir(studio_run_dir):
    return studio_run_dir


@pytest.fixture(scope="module")
def runs(run_dir):
    return load_runs([run_dir])


@pytest.fixture(scope="module")
def client(runs):
    app = serve.create_app(runs, allowed_hosts=serve.app.LOOPBACK_HOSTS)
    with TestClient(app, base_url=BASE) as c:
        yield c


def png(image_chw):
    return pimg.png_b64(image_chw)


def decode(b64):
    """A response PNG as float (C, H, W) in [0, 1], and its embedded settings."""
    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        a = np.asarray(im, np.float32) / 255.0
        settings = json.loads(im.text["pixelforge"])
    return (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)), settings


def quantized(images):
    """What the studio's PNGs hold for images in [0, 1]: 8-bit levels."""
    return np.stack([pimg.to_uint8(im) for im in images]).astype(np.float32).reshape(len(images), -1) / 255.0


def same_images(response_images, expected):
    got = np.stack([decode(b)[0] for b in response_images]).reshape(len(response_images), -1)
    np.testing.assert_array_equal(got, quantized(expected))


def test_runs_lists_the_contract_fields(client, runs):
    r = client.get("/api/runs")
    assert r.status_code == 200
    listed = {d["name"]: d for d in r.json()}
    assert set(listed) == {"gan", "vae", "transformer", "diffusion"}
    for name, d in listed.items():
        assert {"name", "family", "image_shape", "num_classes", "text"} <= set(d)
        assert d["family"] == name and d["image_shape"] == [1, 8, 8] and d["text"] is False
    assert listed["diffusion"]["num_classes"] == 10 and listed["gan"]["num_classes"] is None
    assert listed["diffusion"]["class_names"] == [str(i) for i in range(10)]
    assert listed["diffusion"]["operations"] == ["generate", "img2img", "inpaint", "interpolate"]
    assert "steps" in listed["diffusion"]["settings"] and "steps" not in listed["gan"]["settings"]
    assert listed["diffusion"]["defaults"]["steps"] == runs["diffusion"].model.config["sample_steps"]


@pytest.mark.parametrize("family", ["gan", "vae", "transformer", "diffusion"])
def test_generate_is_the_librarys_sample(client, runs, family):
    kw = {"steps": 7} if family == "diffusion" else {}
    r = client.post("/api/generate", json={"run": family, "n": 3, "seed": 11, **kw})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["images"]) == 3
    expected = runs[family].model.sample(3, seed=11, **kw)
    same_images(body["images"], expected)
    s = body["settings"]
    assert (s["run"], s["kind"], s["n"], s["seed"]) == (family, "generate", 3, 11)
    # each PNG carries the settings that made it, plus its index
    for i, b in enumerate(body["images"]):
        assert decode(b)[1] == dict(s, index=i)


def test_generate_label_and_guidance(client, runs):
    r = client.post("/api/generate", json={"run": "diffusion", "n": 2, "seed": 3, "steps": 5, "label": 7,
                                           "guidance_scale": 2.0, "sampler": "ddpm"})
    assert r.status_code == 200, r.text
    m = runs["diffusion"].model
    same_images(r.json()["images"], m.sample(2, seed=3, labels=[7, 7], steps=5, guidance_scale=2.0, sampler="ddpm"))
    s = r.json()["settings"]
    assert (s["label"], s["guidance_scale"], s["sampler"], s["steps"]) == (7, 2.0, "ddpm", 5)


def test_defaults_are_filled_in(client, runs):
    s = client.post("/api/generate", json={"run": "diffusion", "n": 1}).json()["settings"]
    c = runs["diffusion"].model.config
    assert (s["steps"], s["sampler"], s["guidance_scale"], s["seed"]) == (c["sample_steps"], c["sampler"],
                                                                          c["guidance_scale"], 0)
    s = client.post("/api/generate", json={"run": "vae"}).json()["settings"]
    assert s["n"] == 4 and s["temperature"] == runs["vae"].model.config["temperature"] and "steps" not in s


def test_img2img_inpaint_interpolate_are_the_librarys(client, runs):
    rng = np.random.default_rng(0)
    x = rng.random((1, 1, 8, 8)).astype(np.float32)
    xq = quantized(x).reshape(1, 1, 8, 8)                     # what the server decodes from the PNG
    m = runs["diffusion"].model
    r = client.post("/api/img2img", json={"run": "diffusion", "image": png(x[0]), "strength": 0.5, "seed": 2,
                                          "steps": 6, "label": 1, "n": 2})
    assert r.status_code == 200, r.text
    same_images(r.json()["images"], m.img2img(np.repeat(xq, 2, 0), 0.5, seed=2, steps=6, labels=[1, 1]))
    assert r.json()["settings"]["strength"] == 0.5 and len(r.json()["settings"]["image_sha256"]) == 64

    mask = np.zeros((1, 8, 8), np.float32)
    mask[:, 2:6, 2:6] = 1.0
    r = client.post("/api/inpaint", json={"run": "diffusion", "image": png(x[0]), "mask": png(mask), "seed": 4,
                                          "steps": 5})
    assert r.status_code == 200, r.text
    expected = m.inpaint(xq, mask[None], seed=4, steps=5)
    same_images(r.json()["images"], expected)
    got = decode(r.json()["images"][0])[0]
    np.testing.assert_array_equal(got[mask == 0], xq[0][mask == 0])   # kept pixels come back unchanged

    r = client.post("/api/img2img", json={"run": "vae", "image": png(x[0]), "strength": 0.3, "seed": 5})
    assert r.status_code == 200, r.text
    same_images(r.json()["images"], runs["vae"].model.img2img(xq, 0.3, seed=5))

    r = client.post("/api/interpolate", json={"run": "gan", "seed_a": 1, "seed_b": 9, "n": 5})
    assert r.status_code == 200, r.text
    same_images(r.json()["images"], runs["gan"].model.interpolate(1, 9, 5))
    assert r.json()["settings"]["seed_a"] == 1 and "seed" not in r.json()["settings"]


def test_uploads_are_resized_and_converted(client, runs):
    """A big colour canvas PNG or a JPEG goes to a grey 8x8 model as io.load_image makes it."""
    big = Image.new("RGB", (256, 256), (0, 0, 0))
    big.paste((255, 255, 255), (64, 0, 192, 256))
    for fmt in ("PNG", "JPEG"):
        buf = io.BytesIO()
        big.save(buf, format=fmt)
        b64 = "data:image/x;base64," + base64.b64encode(buf.getvalue()).decode()
        r = client.post("/api/img2img", json={"run": "vae", "image": b64, "strength": 0.0})
        assert r.status_code == 200, r.text
        buf.seek(0)
        x = pf.io.load_image(buf, (1, 8, 8))
        same_images(r.json()["images"], runs["vae"].model.img2img(x, 0.0))


def test_png_info_round_trip(client):
    img = client.post("/api/generate", json={"run": "gan", "n": 1, "seed": 42}).json()["images"][0]
    r = client.post("/api/png-info", json={"image": img})
    assert r.status_code == 200 and r.json()["settings"]["seed"] == 42 and r.json()["settings"]["run"] == "gan"
    r = client.post("/api/png-info", json={"image": png(np.zeros((1, 4, 4), np.float32))})
    assert r.status_code == 400 and "no pixelforge settings" in r.json()["detail"]


def _events(client, jid):
    out = []
    with client.stream("GET", f"/api/jobs/{jid}/events") as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in s.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((name, json.loads(line[6:])))
    return out


def test_job_streams_previews_then_the_result(runs):
    # a fresh app streaming every 1 ms, so a 200-step job shows many of its steps
    app = serve.create_app(runs, stream_interval=0.001)
    with TestClient(app, base_url=BASE) as c:
        r = c.post("/api/jobs", json={"kind": "generate", "run": "diffusion", "n": 2, "steps": 200, "seed": 1})
        assert r.status_code == 202, r.text
        events = _events(c, r.json()["id"])
        names = [e[0] for e in events]
        assert names[-1] == "done" and names.count("done") == 1
        progress = [d for n, d in events if n == "progress"]
        assert len(progress) >= 2, names
        steps = [p["step"] for p in progress]
        assert steps == sorted(steps) and all(p["total"] == 200 for p in progress)
        assert all(len(p["previews"]) == 2 for p in progress)
        final = events[-1][1]
        same_images(final["images"], runs["diffusion"].model.sample(2, seed=1, steps=200))
        assert c.get(f"/api/jobs/{final['id']}").json()["status"] == "done"
        assert c.get("/api/history").json()[0]["id"] == final["id"]


class Gated(Run):
    """A real run whose jobs wait at a gate first: the queue tests need a job that stays running."""

    def __init__(self, run, gate):
        super().__init__(run.name, run.model)
        self.gate = gate

    def execute(self, kind, settings, inputs, callback):
        self.gate.wait(30)
        return super().execute(kind, settings, inputs, callback)


def _wait_status(c, jid, status, seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        st = c.get(f"/api/jobs/{jid}").json()["status"]
        if st == status:
            return st
        time.sleep(0.01)
    raise AssertionError(f"job {jid} never reached {status} (last {st})")


def test_queue_limit_answers_429_and_cancel(runs):
    gate = threading.Event()
    gated = {"diffusion": Gated(runs["diffusion"], gate)}
    app = serve.create_app(gated, queue_size=2)
    with TestClient(app, base_url=BASE) as c:
        job = {"kind": "generate", "run": "diffusion", "n": 1, "steps": 3}
        first = c.post("/api/jobs", json=job).json()["id"]
        _wait_status(c, first, "running")                   # taken by the worker, held at the gate
        queued = [c.post("/api/jobs", json=job) for _ in range(2)]
        assert [q.status_code for q in queued] == [202, 202]
        assert [q.json()["position"] for q in queued] == [0, 1]
        full = c.post("/api/jobs", json=job)
        assert full.status_code == 429 and full.headers["retry-after"] == "1"
        assert c.post("/api/generate", json=job).status_code == 429
        # cancel a queued job: it never runs
        r = c.post(f"/api/jobs/{queued[1].json()['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        gate.set()
        _wait_status(c, queued[0].json()["id"], "done")
        assert c.get(f"/api/jobs/{queued[1].json()['id']}").json()["status"] == "cancelled"
        assert c.post("/api/jobs/nope/cancel").status_code == 404
        assert c.get("/api/jobs/nope/events").status_code == 404


def test_cancel_stops_a_running_job_at_its_next_step(runs):
    app = serve.create_app(runs, stream_interval=0.001)
    with TestClient(app, base_url=BASE) as c:
        jid = c.post("/api/jobs", json={"kind": "generate", "run": "diffusion", "n": 64, "steps": 1000}).json()["id"]
        end = time.time() + 60
        while c.get(f"/api/jobs/{jid}").json()["step"] < 2 and time.time() < end:
            time.sleep(0.01)
        t0 = time.time()
        assert c.post(f"/api/jobs/{jid}/cancel").status_code == 200
        _wait_status(c, jid, "cancelled", 30)
        stopped = time.time() - t0
        state = c.get(f"/api/jobs/{jid}").json()
        assert state["step"] < 1000 and len(state["images"]) == 64       # the previews at the stop
        assert stopped < 5, stopped
        # the worker goes on with the next job
        assert c.post("/api/generate", json={"run": "gan", "n": 1}).status_code == 200


class Faulty(Run):
    def execute(self, kind, settings, inputs, callback):
        raise RuntimeError("a bug in a model")


def test_the_worker_survives_a_failing_job(runs):
    app = serve.create_app({"bad": Faulty("bad", runs["gan"].model), "gan": runs["gan"]})
    with TestClient(app, base_url=BASE) as c:
        r = c.post("/api/generate", json={"run": "bad", "n": 1})
        assert r.status_code == 500 and "a bug in a model" in r.json()["detail"]
        assert c.post("/api/generate", json={"run": "gan", "n": 1}).status_code == 200


def _b64_of(pil, fmt="PNG"):
    buf = io.BytesIO()
    pil.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


BAD = [
    # (endpoint, body, status, a word the detail must name)
    ("generate", {"run": "gan", "n": 0}, 422, "n"),
    ("generate", {"run": "gan", "n": 65}, 422, "n"),
    ("generate", {"run": "gan", "n": "4"}, 422, "n"),
    ("generate", {"run": "gan", "n": True}, 422, "n"),
    ("generate", {"run": "diffusion", "steps": 0}, 422, "steps"),
    ("generate", {"run": "diffusion", "steps": 1001}, 422, "steps"),
    ("generate", {"run": "gan", "seed": -1}, 422, "seed"),
    ("generate", {"run": "gan", "seed": 2**32}, 422, "seed"),
    ("generate", {"run": "diffusion", "guidance_scale": 31}, 422, "guidance_scale"),
    ("generate", {"run": "diffusion", "sampler": "euler"}, 422, "sampler"),
    ("generate", {"run": "vae", "temperature": 0}, 422, "temperature"),
    ("generate", {"run": "gan", "nn": 4}, 422, "nn"),
    ("generate", {"n": 4}, 422, "run"),
    ("generate", {"run": "../../etc/passwd"}, 404, "run"),
    ("generate", {"run": "nope"}, 404, "run"),
    ("generate", {"run": "gan", "steps": 5}, 400, "steps"),
    ("generate", {"run": "gan", "temperature": 1.0}, 400, "temperature"),
    ("generate", {"run": "vae", "label": 1}, 400, "label"),
    ("generate", {"run": "diffusion", "label": 10}, 400, "label"),
    ("generate", {"run": "diffusion", "label": -1}, 422, "label"),
    ("img2img", {"run": "diffusion", "image": "x", "strength": 1.5}, 422, "strength"),
    ("img2img", {"run": "diffusion", "image": "x", "strength": -0.1}, 422, "strength"),
    ("img2img", {"run": "diffusion"}, 422, "image"),
    ("img2img", {"run": "diffusion", "image": "not base64!"}, 400, "image"),
    ("img2img", {"run": "diffusion", "image": base64.b64encode(b"hello, not an image").decode()}, 400, "image"),
    ("img2img", {"run": "diffusion", "image": "data:image/png,abc"}, 400, "image"),
    ("img2img", {"run": "diffusion", "image": _b64_of(Image.new("L", (8, 8)), "TIFF")}, 400, "TIFF"),
    ("img2img", {"run": "diffusion", "image": _b64_of(Image.new("1", (5000, 5000)))}, 400, "pixels"),
    ("img2img", {"run": "gan", "image": _b64_of(Image.new("L", (8, 8)))}, 400, "kind"),
    ("img2img", {"run": "transformer", "image": _b64_of(Image.new("L", (8, 8)))}, 400, "kind"),
    ("inpaint", {"run": "vae", "image": _b64_of(Image.new("L", (8, 8))),
                 "mask": _b64_of(Image.new("L", (8, 8)))}, 400, "kind"),
    ("inpaint", {"run": "diffusion", "image": _b64_of(Image.new("L", (8, 8)))}, 422, "mask"),
    ("inpaint", {"run": "diffusion", "image": _b64_of(Image.new("L", (8, 8))), "mask": "@@"}, 400, "mask"),
    ("interpolate", {"run": "gan", "n": 1}, 422, "n"),
    ("interpolate", {"run": "gan", "steps": 3}, 400, "steps"),
]


@pytest.mark.parametrize("endpoint,body,status,word", BAD, ids=[f"{e}-{i}" for i, (e, *_) in enumerate(BAD)])
def test_bad_requests_get_a_clear_4xx(client, endpoint, body, status, word):
    r = client.post(f"/api/{endpoint}", json=body)
    assert r.status_code == status, r.text
    assert word in json.dumps(r.json()["detail"])
    # the same through the job queue
    r = client.post("/api/jobs", json={"kind": endpoint, **body})
    assert r.status_code == status, r.text


def test_malformed_bodies_and_oversized_uploads(client):
    h = {"content-type": "application/json"}
    for raw in (b"{", b"[]", b"null", b'{"run": "gan", "n": NaN}', b"\xff\xfe"):
        r = client.post("/api/generate", content=raw, headers=h)
        assert r.status_code == 422, (raw, r.text)
    assert client.post("/api/jobs", json={"kind": "paint", "run": "gan"}).status_code == 422
    assert client.post("/api/jobs", json={"run": "gan"}).status_code == 422
    # a decoded upload over 4 MB: 413 (random bytes do not compress, so the PNG is big)
    noise = np.random.default_rng(0).integers(0, 256, (1300, 1300, 3), dtype=np.uint8)
    big = _b64_of(Image.fromarray(noise))
    assert len(base64.b64decode(big)) > 4 * 2**20
    r = client.post("/api/img2img", json={"run": "diffusion", "image": big})
    assert r.status_code in (413, 422), r.text
    r = client.post("/api/generate", content=b"x" * 100, headers={**h, "content-length": str(17 * 2**20)})
    assert r.status_code == 413
    assert client.get("/api/history?limit=0").status_code == 400
    assert client.get("/api/history?limit=x").status_code == 422
    assert client.get("/static/../__init__.py").status_code == 404
    assert client.get("/api/jobs/%2e%2e%2fapp.py").status_code == 404


def test_page_and_docs_are_served(client):
    r = client.get("/")
    assert r.status_code == 200 and "<html" in r.text.lower()
    for ref in ("static/studio.js", "static/studio.css"):
        assert ref in r.text and client.get("/" + ref).status_code == 200
    assert "http" not in "".join(line for line in r.text.splitlines() if "src=" in line or "href=" in line)
    assert client.get("/openapi.json").json()["paths"]["/api/generate"]
    assert client.get("/docs").status_code == 200


def test_host_header_must_be_loopback_when_bound_to_loopback(client):
    assert client.get("/api/runs", headers={"host": "evil.example:7860"}).status_code == 400
    assert client.get("/api/runs", headers={"host": "localhost:7860"}).status_code == 200
    assert client.get("/api/runs", headers={"host": "[::1]:7860"}).status_code == 200


def test_token_is_required_on_every_request(runs):
    app = serve.create_app(runs, token="s3cret-token")
    with TestClient(app, base_url=BASE) as c:
        for path in ("/", "/api/runs", "/static/studio.js", "/api/history", "/docs"):
            r = c.get(path)
            assert r.status_code == 401, path
        assert c.get("/api/runs", headers={"authorization": "Bearer wrong-token"}).status_code == 401
        assert c.post("/api/generate", json={"run": "gan"}).status_code == 401
        assert c.get("/api/runs", headers={"authorization": "Bearer s3cret-token"}).status_code == 200
        assert c.get("/api/runs?token=s3cret-token").status_code == 200
        r = c.get("/?token=s3cret-token")                   # the page sets the cookie its assets use
        assert r.status_code == 200 and "pixelforge_token" in r.headers["set-cookie"]
        assert c.get("/static/studio.js").status_code == 200
        c.cookies.clear()
        assert c.get("/static/studio.js").status_code == 401


def test_non_loopback_bind_needs_a_token(run_dir, capsys):
    assert serve.is_loopback("127.0.0.1") and serve.is_loopback("::1") and serve.is_loopback("localhost")
    assert not serve.is_loopback("0.0.0.0") and not serve.is_loopback("192.168.1.5")
    with pytest.raises(ValueError, match="--token"):
        serve.serve([run_dir], host="0.0.0.0")
    from pixelforge.cli import main
    assert main(["serve", str(run_dir), "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err
    assert main(["serve", str(run_dir / "missing")]) == 2


def test_load_runs_finds_run_folders(run_dir, tmp_path):
    assert list(load_runs([run_dir])) == ["diffusion", "gan", "transformer", "vae"]
    assert list(load_runs([run_dir / "gan", run_dir / "gan"])) == ["gan", "gan-2"]
    with pytest.raises(FileNotFoundError, match="no saved run"):
        load_runs([tmp_path])


def test_a_streamed_body_over_the_limit_is_413(client):
    def chunks():                       # no content-length: the server must count
        for _ in range(20):
            yield b" " * 2**20
    r = client.post("/api/generate", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "body" in r.json()["detail"]
    assert client.post("/api/generate", json={"run": "gan", "n": 1}).status_code == 200


def test_serves_a_diffusers_folder(tmp_path):
    m = pf.models.create("diffusion", (1, 8, 8))
    m.save_diffusers(tmp_path / "pipe")
    runs = load_runs([tmp_path / "pipe"])
    assert list(runs) == ["pipe"] and runs["pipe"].family == "diffusion"
    with TestClient(serve.create_app(runs), base_url=BASE) as c:
        r = c.post("/api/generate", json={"run": "pipe", "n": 2, "seed": 5, "steps": 4})
        assert r.status_code == 200, r.text
        same_images(r.json()["images"], pf.models.load_diffusers(tmp_path / "pipe").sample(2, seed=5, steps=4))


class Instant(Run):
    """The request checks of a real run, with an instant result (the fuzz test is about input)."""

    def execute(self, kind, settings, inputs, callback):
        n = int(settings.get("n") or 1)
        callback(1, 1, np.zeros((n, *self.model.image_shape), np.float32))
        return np.zeros((n, *self.model.image_shape), np.float32)


def test_no_body_gets_a_5xx(runs):
    """Arbitrary JSON at every POST route: a 2xx, 4xx or 429, never a 5xx, and the worker lives."""
    hyp = pytest.importorskip("hypothesis", reason="the fuzz test needs hypothesis (the test extra)")
    st = pytest.importorskip("hypothesis.strategies")
    fast = {name: Instant(name, r.model) for name, r in runs.items()}
    keys = ["run", "kind", "n", "seed", "label", "steps", "guidance_scale", "sampler", "temperature", "strength",
            "image", "mask", "seed_a", "seed_b", "extra"]
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=12), st.sampled_from(list(runs) + ["generate", "img2img", "inpaint",
                                                                             "interpolate", "ddim", png(np.ones((1, 3, 3)))]))
    values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=4), scalars, max_size=2))
    bodies = st.one_of(st.dictionaries(st.sampled_from(keys), values, max_size=8), values)
    routes = st.sampled_from(["/api/generate", "/api/img2img", "/api/inpaint", "/api/interpolate", "/api/jobs",
                              "/api/png-info"])
    with TestClient(serve.create_app(fast, queue_size=1000), base_url=BASE) as c:
        @hyp.settings(max_examples=300, deadline=None, derandomize=True)
        @hyp.given(route=routes, body=bodies)
        def check(route, body):
            r = c.post(route, json=body)
            assert r.status_code < 500, (route, body, r.text)
        check()
        assert c.post("/api/generate", json={"run": "gan", "n": 1}).status_code == 200
