"""A load test of `pixelforge serve` as a user starts it (its own process): rounds of 50 mixed
requests from 8 concurrent clients against the served digits runs. Every request is answered
as designed (200/202, 429 when the queue is full, the 4xx its bad input deserves), none with a
5xx; the server's resident memory stays flat from round to round; the page still responds."""
import base64
import concurrent.futures as cf
import io
import json
import os
import random
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the studio needs the serve extra: pip install 'pixelforge[serve]'")
pytest.importorskip("uvicorn", reason="the studio needs the serve extra: pip install 'pixelforge[serve]'")
httpx = pytest.importorskip("httpx", reason="the load test's clients need httpx (the test extra)")
from PIL import Image  # noqa: E402

CLIENTS, REQUESTS, QUEUE = 8, 50, 4


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture(scope="module")
def server(studio_run_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "pixelforge", "serve", str(studio_run_dir), "--port", str(port),
                             "--queue", str(QUEUE)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    url = f"http://127.0.0.1:{port}"
    end = time.time() + 120
    while True:
        try:
            if httpx.get(url + "/api/runs", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.time() > end:
            out = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
            proc.kill()
            pytest.fail(f"pixelforge serve did not start: {out}")
        time.sleep(0.2)
    yield url, proc
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _png(seed):
    a = np.random.default_rng(seed).integers(0, 256, (64, 64), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _mask():
    a = np.zeros((8, 8), np.uint8)
    a[2:6] = 255
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


MASK = _mask()


def one_request(url, i):
    """Request number i of a round: (what, status, expected statuses)."""
    rnd = random.Random(i)
    kind = i % 10
    with httpx.Client(base_url=url, timeout=120) as c:
        if kind == 0:
            r = c.post("/api/generate", json={"run": "diffusion", "n": rnd.randint(1, 8), "seed": i, "steps": 20})
        elif kind == 1:
            r = c.post("/api/generate", json={"run": rnd.choice(["gan", "vae", "transformer"]), "n": 8, "seed": i})
        elif kind == 2:
            r = c.post("/api/img2img", json={"run": "diffusion", "image": _png(i), "strength": 0.5, "steps": 20})
        elif kind == 3:
            r = c.post("/api/inpaint", json={"run": "diffusion", "image": _png(i), "mask": MASK, "steps": 10})
        elif kind == 4:
            r = c.post("/api/interpolate", json={"run": "vae", "seed_a": i, "seed_b": i + 1, "n": 6})
        elif kind == 5:         # a streamed job, read to its end
            r = c.post("/api/jobs", json={"kind": "generate", "run": "diffusion", "n": 4, "steps": 30, "seed": i})
            if r.status_code == 202:
                with c.stream("GET", f"/api/jobs/{r.json()['id']}/events") as s:
                    last = [line for line in s.iter_lines() if line.startswith("event:")][-1]
                    assert last in ("event: done", "event: cancelled"), last
        elif kind == 6:         # queued then cancelled
            r = c.post("/api/jobs", json={"kind": "generate", "run": "diffusion", "n": 16, "steps": 200, "seed": i})
            if r.status_code == 202:
                r = c.post(f"/api/jobs/{r.json()['id']}/cancel")
        elif kind == 7:
            r = c.get(rnd.choice(["/api/runs", "/api/history", "/", "/static/studio.js"]))
        elif kind == 8:         # bad input: answered 4xx, never 5xx
            r = c.post("/api/generate", json=rnd.choice([{"run": "gan", "n": 99}, {"run": "nope"},
                                                         {"run": "gan", "steps": 3}, {"run": "diffusion", "label": 50}]))
            return "bad", r.status_code, (400, 404, 422)
        else:
            r = c.post("/api/img2img", json={"run": "diffusion", "image": "bm90IGFuIGltYWdl"})
            return "bad upload", r.status_code, (400,)
    return f"kind {kind}", r.status_code, (200, 202, 429)


def load_round(url):
    with cf.ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(lambda i: one_request(url, i), range(REQUESTS)))


def test_fifty_mixed_requests_from_eight_clients(server):
    url, proc = server
    rss, codes = [], {}
    for _ in range(3):
        for what, code, expected in load_round(url):
            assert code < 500, (what, code)
            assert code in expected, (what, code)
            codes[code] = codes.get(code, 0) + 1
        rss.append(rss_mb(proc.pid))
    print(f"\nstatus counts over {3 * REQUESTS} requests: {json.dumps(codes, sort_keys=True)}; server RSS MB by round: "
          + ", ".join(f"{m:.1f}" for m in rss))
    # clients that get 429 do not retry here, so with a queue of 4 and 8 clients about half the
    # work is refused (measured: 40 of 150 answered 200/202, 80 got 429): as designed; work was done
    assert codes.get(200, 0) + codes.get(202, 0) >= 20, codes
    # flat: after the first round (first-use compilation, buffers), rounds add almost nothing
    assert rss[2] - rss[0] < 30, rss
    # the page and the API still respond, and the worker still runs jobs
    r = httpx.get(url + "/", timeout=10)
    assert r.status_code == 200 and "pixelforge studio" in r.text
    r = httpx.post(url + "/api/generate", json={"run": "gan", "n": 2}, timeout=60)
    assert r.status_code == 200 and len(r.json()["images"]) == 2
    assert proc.poll() is None
