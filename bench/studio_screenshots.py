"""The README's two studio screenshots, reproducible: `pixelforge serve` on the given runs in
this process, driven by headless Chromium (Selenium).

  python bench/studio_screenshots.py RUN_DIR [RUN_DIR ...] [--run NAME] [--label K] [--out bench]

1. bench/studio-generate.png: a batch of 16 forming, previews streaming (taken mid-run);
2. bench/studio-img2img.png: a sketch on the canvas and what img2img made of it.
The sketch is a pair of trouser legs (Fashion-MNIST class 1); pass --label for the class.
"""
from __future__ import annotations

import argparse
import pathlib
import socket
import threading
import time

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from pixelforge import serve


def set_value(d, element_id, value):
    d.execute_script("const e = document.getElementById(arguments[0]); e.value = arguments[1];"
                     "e.dispatchEvent(new Event('input', {bubbles: true}));"
                     "e.dispatchEvent(new Event('change', {bubbles: true}));", element_id, str(value))


def stroke(d, element, points):
    r = element.rect
    pts = [(int((x - 0.5) * r["width"]), int((y - 0.5) * r["height"])) for x, y in points]
    chain = ActionChains(d).move_to_element_with_offset(element, *pts[0]).click_and_hold()
    for p in pts[1:]:
        chain = chain.move_to_element_with_offset(element, *p)
    chain.release().perform()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--run", default=None, help="the run to show (default: the first diffusion run)")
    ap.add_argument("--label", type=int, default=1)
    ap.add_argument("--out", default="bench")
    args = ap.parse_args()
    runs = serve.load_runs(args.runs)
    name = args.run or next(n for n, r in runs.items() if r.family == "diffusion")
    app = serve.create_app(runs, stream_interval=0.1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
              "--hide-scrollbars"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    out = pathlib.Path(args.out)
    try:
        d.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(d, 300, poll_frequency=0.02)
        wait.until(lambda d: len(Select(d.find_element(By.ID, "run")).options) == len(runs))
        Select(d.find_element(By.ID, "run")).select_by_value(name)
        set_value(d, "n", 16)
        set_value(d, "seed", 7)
        d.find_element(By.ID, "generate").click()
        total = runs[name].defaults.get("steps", 50)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results img.preview")
                   and d.find_element(By.ID, "progress").get_attribute("value")
                   and int(d.find_element(By.ID, "progress").get_attribute("value")) >= total // 2)
        d.save_screenshot(str(out / "studio-generate.png"))
        wait.until(lambda d: d.find_element(By.ID, "status").text.startswith("done"))

        # the sketch: two trouser legs joined by a waistband, light grey on black
        if runs[name].model.conditional:
            Select(d.find_element(By.ID, "label")).select_by_value(str(args.label))
        d.find_element(By.ID, "clear").click()
        set_value(d, "brush-color", "#c8c8c8")
        set_value(d, "brush-size", 36)
        sketch = d.find_element(By.ID, "sketch")
        stroke(d, sketch, [(0.3, 0.12), (0.7, 0.12)])
        stroke(d, sketch, [(0.35, 0.12), (0.33, 0.9)])
        stroke(d, sketch, [(0.65, 0.12), (0.67, 0.9)])
        set_value(d, "strength", 0.7)
        set_value(d, "n", 8)
        d.find_element(By.ID, "img2img").click()
        wait.until(lambda d: d.find_element(By.ID, "status").text.startswith("done"))
        d.save_screenshot(str(out / "studio-img2img.png"))
    finally:
        d.quit()
        srv.should_exit = True
    print(f"wrote {out / 'studio-generate.png'} and {out / 'studio-img2img.png'}")


if __name__ == "__main__":
    main()
