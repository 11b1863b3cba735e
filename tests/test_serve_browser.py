"""pixelforge studio in a real headless Chromium (Selenium): load the page, generate and watch
previews arrive, sketch -> img2img, mask -> inpaint, interpolate, recall from history, cancel
with Esc, both viewports. Screenshots go to the test's temp folder."""
import base64
import io
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the studio needs the serve extra: pip install 'pixelforge[serve]'")
pytest.importorskip("uvicorn", reason="the studio needs the serve extra: pip install 'pixelforge[serve]'")
pytest.importorskip("selenium", reason="browser tests need selenium (the test extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("browser tests need Chromium and its driver (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)

import uvicorn  # noqa: E402
from PIL import Image  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from pixelforge import serve  # noqa: E402

TIMEOUT = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(studio_run_dir):
    """The studio on a free loopback port, in this process (uvicorn in a thread)."""
    runs = serve.load_runs([studio_run_dir])
    app = serve.create_app(runs, allowed_hosts=serve.app.LOOPBACK_HOSTS)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    end = time.time() + 30
    while not srv.started and time.time() < end:
        time.sleep(0.02)
    assert srv.started
    yield f"http://127.0.0.1:{port}/", runs
    srv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser():
    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,800"):
        opts.add_argument(a)
    # the sanitizer stage preloads ASan into every child process; Chromium is not built for it
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env=env), options=opts)
    yield driver
    driver.quit()


@pytest.fixture
def page(server, browser, tmp_path):
    url, runs = server
    browser.set_window_size(1280, 800)
    browser.get(url)
    wait(browser, lambda d: len(Select(d.find_element(By.ID, "run")).options) == len(runs))
    browser.shots = tmp_path
    return browser


def wait(d, cond, timeout=TIMEOUT):
    return WebDriverWait(d, timeout, poll_frequency=0.02).until(cond)


def status(d):
    return d.find_element(By.ID, "status").text


def wait_status(d, word, timeout=TIMEOUT):
    wait(d, lambda d: status(d).startswith(word) or status(d).startswith("error"), timeout)
    assert status(d).startswith(word), status(d)


def press(d, element):
    """Click as a user would: scrolled into the middle of the view first (the top bar is sticky)."""
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def choose(d, run):
    Select(d.find_element(By.ID, "run")).select_by_value(run)


def set_value(d, element_id, value):
    """Set an input as a user would (the page listens to input/change)."""
    d.execute_script("const e = document.getElementById(arguments[0]); e.value = arguments[1];"
                     "e.dispatchEvent(new Event('input', {bubbles: true}));"
                     "e.dispatchEvent(new Event('change', {bubbles: true}));", element_id, str(value))


def img_pixels(img_element):
    """A result <img>'s PNG (data URL) as float (H, W[, 3]) in [0, 1]."""
    src = img_element.get_attribute("src")
    raw = base64.b64decode(src.split(",", 1)[1])
    with Image.open(io.BytesIO(raw)) as im:
        return np.asarray(im, np.float32) / 255.0


def stroke(d, element, points):
    """Drag the mouse through points given as fractions (x, y) of the element's size."""
    r = element.rect
    xs = [(px - 0.5) * r["width"] for px, _ in points]
    ys = [(py - 0.5) * r["height"] for _, py in points]
    chain = ActionChains(d).move_to_element_with_offset(element, int(xs[0]), int(ys[0])).click_and_hold()
    for x, y in zip(xs[1:], ys[1:]):
        chain = chain.move_to_element_with_offset(element, int(x), int(y))
    chain.release().perform()


def test_generate_streams_previews_then_results(page):
    d = page
    choose(d, "diffusion")
    set_value(d, "n", 8)
    set_value(d, "steps", 400)
    press(d, d.find_element(By.ID, "generate"))
    # previews arrive while it runs ...
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#results img.preview"))
    assert status(d).startswith(("running", "queued"))
    d.save_screenshot(str(d.shots / "generate-previews.png"))
    assert len(d.find_elements(By.CSS_SELECTOR, "#results img.preview")) == 8
    # ... then the images
    wait_status(d, "done")
    results = d.find_elements(By.CSS_SELECTOR, "#results img.result")
    assert len(results) == 8
    assert int(d.execute_script("return document.body.dataset.previews")) >= 2
    assert img_pixels(results[0]).shape == (8, 8)
    d.save_screenshot(str(d.shots / "generate-done.png"))
    assert d.find_elements(By.CSS_SELECTOR, "#history .history-item")


def test_sketch_goes_to_img2img(page, server):
    d = page
    choose(d, "diffusion")
    sketch = d.find_element(By.ID, "sketch")
    press(d, d.find_element(By.ID, "clear"))
    set_value(d, "brush-size", 64)
    # a white vertical bar down the middle of the black canvas, about two model pixels wide
    stroke(d, sketch, [(0.5, 0.05), (0.5, 0.5), (0.5, 0.95)])
    set_value(d, "strength", 0)             # strength 0: the model returns the sketch it was sent
    set_value(d, "n", 1)
    press(d, d.find_element(By.ID, "img2img"))
    wait_status(d, "done")
    out = img_pixels(d.find_element(By.CSS_SELECTOR, "#results img.result"))
    assert out.shape == (8, 8)
    assert out[:, 3:5].mean() > 0.6 and out[:, 0].max() < 0.2 and out[:, 7].max() < 0.2, out
    # and at a real strength the model redraws it
    set_value(d, "strength", 0.6)
    press(d, d.find_element(By.ID, "img2img"))
    wait_status(d, "done")
    d.save_screenshot(str(d.shots / "sketch-img2img.png"))
    hist = d.find_elements(By.CSS_SELECTOR, "#history .history-item")[0]
    assert "img2img" in hist.text


def test_mask_and_inpaint_keeps_the_unmasked_pixels(page):
    d = page
    choose(d, "diffusion")
    set_value(d, "n", 2)
    press(d, d.find_element(By.ID, "generate"))
    wait_status(d, "done")
    source = img_pixels(d.find_element(By.CSS_SELECTOR, "#results img.result"))
    press(d, d.find_element(By.CSS_SELECTOR, "#results .result-item button.to-canvas"))
    press(d, d.find_element(By.ID, "mask-mode"))
    press(d, d.find_element(By.ID, "clear"))          # clears the mask in mask mode
    set_value(d, "brush-size", 30)
    stroke(d, d.find_element(By.ID, "mask"), [(0.05, 0.5), (0.5, 0.5), (0.95, 0.5)])   # a band across the middle
    set_value(d, "n", 1)
    press(d, d.find_element(By.ID, "inpaint"))
    wait_status(d, "done")
    out = img_pixels(d.find_element(By.CSS_SELECTOR, "#results img.result"))
    # rows far from the band are kept exactly; the model redrew the band
    np.testing.assert_array_equal(out[:2], source[:2])
    np.testing.assert_array_equal(out[-2:], source[-2:])
    d.save_screenshot(str(d.shots / "inpaint.png"))
    press(d, d.find_element(By.ID, "mask-mode"))


def test_interpolation_strip(page):
    d = page
    choose(d, "gan")
    set_value(d, "seed-a", 3)
    set_value(d, "seed-b", 4)
    set_value(d, "frames", 6)
    press(d, d.find_element(By.ID, "interpolate"))
    wait_status(d, "done")
    assert len(d.find_elements(By.CSS_SELECTOR, "#strip img.frame")) == 6


def test_history_recall_restores_settings(page):
    d = page
    choose(d, "vae")
    if not d.find_element(By.ID, "seed-lock").is_selected():
        press(d, d.find_element(By.ID, "seed-lock"))
    set_value(d, "seed", 12345)
    set_value(d, "n", 3)
    set_value(d, "temperature", 0.7)
    press(d, d.find_element(By.ID, "generate"))
    wait_status(d, "done")
    first = [img_pixels(e) for e in d.find_elements(By.CSS_SELECTOR, "#results img.result")]
    # change everything, generate something else
    choose(d, "gan")
    set_value(d, "seed", 999)
    press(d, d.find_element(By.ID, "generate"))
    wait_status(d, "done")
    item = [e for e in d.find_elements(By.CSS_SELECTOR, "#history .history-item") if "vae" in e.text][0]
    press(d, item)
    wait(d, lambda d: d.find_element(By.ID, "run").get_attribute("value") == "vae")
    assert d.find_element(By.ID, "seed").get_attribute("value") == "12345"
    assert d.find_element(By.ID, "n").get_attribute("value") == "3"
    assert float(d.find_element(By.ID, "temperature").get_attribute("value")) == 0.7
    shown = [img_pixels(e) for e in d.find_elements(By.CSS_SELECTOR, "#results img.result")]
    assert len(shown) == 3 and all(np.array_equal(a, b) for a, b in zip(first, shown))
    # generating again from the recalled settings reproduces the images
    press(d, d.find_element(By.ID, "generate"))
    wait_status(d, "done")
    again = [img_pixels(e) for e in d.find_elements(By.CSS_SELECTOR, "#results img.result")]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    press(d, d.find_element(By.ID, "seed-lock"))


def test_enter_generates_and_esc_cancels_a_long_job(page):
    d = page
    choose(d, "diffusion")
    set_value(d, "n", 64)
    set_value(d, "steps", 1000)
    steps = d.find_element(By.ID, "steps")
    steps.click()
    steps.send_keys(Keys.ENTER)
    wait(d, lambda d: int(d.execute_script("return document.body.dataset.previews") or 0) >= 1)
    d.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    wait_status(d, "cancelled", 30)
    assert len(d.find_elements(By.CSS_SELECTOR, "#results img.result")) == 64      # the previews at the stop
    assert d.find_element(By.ID, "generate").is_enabled()
    d.save_screenshot(str(d.shots / "cancelled.png"))


@pytest.mark.parametrize("size", [(1280, 800), (390, 844)])
def test_layout_fits_the_viewport(page, size):
    d = page
    d.set_window_size(*size)
    time.sleep(0.3)
    inner = d.execute_script("return window.innerWidth")
    scroll = d.execute_script("return document.documentElement.scrollWidth")
    assert scroll <= inner, (scroll, inner)                 # no sideways scrolling
    for element_id in ("run", "generate", "sketch", "img2img", "history"):
        e = d.find_element(By.ID, element_id)
        assert e.is_displayed() and e.rect["width"] > 0 and e.rect["x"] + e.rect["width"] <= inner + 1, element_id
    d.save_screenshot(str(d.shots / f"layout-{size[0]}x{size[1]}.png"))
    assert not [e for e in d.get_log("browser") if e["level"] == "SEVERE"]


def test_page_works_behind_a_token(studio_run_dir, browser):
    """Opened as /?token=T (what `pixelforge serve --token T` prints): its assets load through
    the cookie, its API calls through the header, its event stream through the query."""
    runs = serve.load_runs([studio_run_dir / "gan", studio_run_dir / "diffusion"])
    app = serve.create_app(runs, token="browser-token-123")
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        while not srv.started:
            time.sleep(0.02)
        d = browser
        d.delete_all_cookies()
        d.get(f"http://127.0.0.1:{port}/")
        assert "token" in d.find_element(By.TAG_NAME, "body").text            # 401 without it
        d.get(f"http://127.0.0.1:{port}/?token=browser-token-123")
        wait(d, lambda d: len(Select(d.find_element(By.ID, "run")).options) == 2)
        choose(d, "diffusion")
        set_value(d, "steps", 100)
        press(d, d.find_element(By.ID, "generate"))
        wait_status(d, "done")
        assert int(d.execute_script("return document.body.dataset.previews")) >= 1
        assert d.find_elements(By.CSS_SELECTOR, "#results img.result")
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
        browser.delete_all_cookies()


def test_saved_png_carries_settings_and_a_drop_restores_them(page):
    d = page
    choose(d, "vae")
    if not d.find_element(By.ID, "seed-lock").is_selected():
        press(d, d.find_element(By.ID, "seed-lock"))
    set_value(d, "seed", 4242)
    set_value(d, "n", 2)
    press(d, d.find_element(By.ID, "generate"))
    wait_status(d, "done")
    link = d.find_element(By.CSS_SELECTOR, "#results .result-item a.save")
    assert link.get_attribute("download").endswith(".png")
    b64 = link.get_attribute("href").split(",", 1)[1]
    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        assert '"seed": 4242' in im.text["pixelforge"]
    choose(d, "gan")
    set_value(d, "seed", 1)
    # a user drops the downloaded file on the page
    d.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'pixelforge.png', {type: 'image/png'}));
        document.body.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    """, b64)
    wait(d, lambda d: d.find_element(By.ID, "run").get_attribute("value") == "vae")
    wait(d, lambda d: d.find_element(By.ID, "seed").get_attribute("value") == "4242")
    assert d.find_element(By.ID, "n").get_attribute("value") == "2"
    press(d, d.find_element(By.ID, "seed-lock"))
