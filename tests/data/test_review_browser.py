"""The review web app in a real browser: headless Chromium (Debian's package) driven by Selenium.

Scores three items with the number keys, reloads the page, and checks that the answers persisted
(the page resumes after them) and that the dataset changed (calibration.jsonl and items.parquet).
Skips where Chromium, its driver or selenium is missing (`make setup-browser` installs them as root).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from dreamcs.data.review.server import ReviewApp, make_server
from dreamcs.data.store import read_table

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
         "--disable-component-update --disable-sync --disable-dev-shm-usage --use-angle=swiftshader --enable-unsafe-swiftshader --window-size=1280,800")

# counts the pixels of the WebGL canvas where the bluish mesh shows (the background and grid are grey)
MESH_PIXELS_JS = """
const src = document.querySelector('#viewer canvas');
const c = document.createElement('canvas'); c.width = src.width; c.height = src.height;
const g = c.getContext('2d'); g.drawImage(src, 0, 0);
const d = g.getImageData(0, 0, c.width, c.height).data;
let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 2] > d[i] + 25) n++;
return n;
"""


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[test]')")
    if not (CHROMIUM.exists() and DRIVER.exists()):
        pytest.skip("no /usr/bin/chromium + /usr/bin/chromedriver (make setup-browser, as root)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in FLAGS.split():
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")  # a fresh profile every run
    drv = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _wait(drv, js, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(drv, timeout, poll_frequency=0.2).until(lambda d: d.execute_script(js))


def test_review_three_items_in_chromium(browser, built_copy, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    app = ReviewApp(built_copy, reviewer="ann", seed=0)
    httpd = make_server(app, 0)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/?reviewer=ann"
    try:
        browser.get(url)
        _wait(browser, "return window.__appReady === true && window.__meshReady === true")
        assert browser.find_element(By.ID, "item-id").text == app.queue[0]
        _wait(browser, MESH_PIXELS_JS.replace("return n;", "return n > 500;"))  # the mesh is drawn (WebGL via SwiftShader)
        shot = tmp_path / "review.png"
        browser.save_screenshot(str(shot))
        if os.environ.get("DREAMCS_REVIEW_SCREENSHOT"):
            shutil.copy(shot, os.environ["DREAMCS_REVIEW_SCREENSHOT"])
        keys = ["415", "123", "550"]  # alignment, realism, fidelity of three items, with the number keys
        for k, item in zip(keys, app.queue[:3], strict=True):
            assert browser.find_element(By.ID, "item-id").text == item
            ActionChains(browser).send_keys(*k).send_keys(Keys.ENTER).perform()
            _wait(browser, f"return document.getElementById('status').dataset.saved === {json.dumps(item)}")
        browser.refresh()  # reopening resumes after the three answers
        _wait(browser, "return window.__appReady === true")
        assert browser.find_element(By.ID, "item-id").text == app.queue[3]
        assert browser.find_element(By.ID, "progress").text.startswith("3 answered by ann")
        browser.find_element(By.ID, "show-agreement").click()
        _wait(browser, "return document.getElementById('agreement').textContent.includes('ann (3)')")
    finally:
        httpd.shutdown()
        httpd.server_close()
        app.close()  # writes the table if the background writer has not yet
    log = [json.loads(x) for x in (built_copy / "calibration.jsonl").read_text().splitlines()]
    assert [r["id"] for r in log] == app.queue[:3] and {r["reviewer"] for r in log} == {"ann"}
    rows = {r["id"]: r for r in read_table(built_copy)}
    for k, item in zip(keys, app.queue[:3], strict=True):
        want = [float(c) for c in k]
        assert [rows[item][d] for d in ("alignment", "realism", "fidelity")] == want
        assert rows[item]["score_source"] == "human" and rows[item]["provenance"] == "reviewer:ann"
