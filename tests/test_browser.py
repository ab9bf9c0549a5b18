"""report.html in a real browser: headless Chromium via selenium (issue 6, item 3).

Checks every page: at least one image, every <img> rendered (naturalWidth > 0), no network
request other than file: / data: URLs (from the DevTools performance log), no SEVERE console
message.  Screenshots (desktop, full page, and phone width) go to <repo>/test-artifacts/.
Two negative self-checks prove the checker fails on a broken image and on a network request.
Table cells: no cell that is one number wraps, and no cell breaks a word (a line break
between two letters, not at a space or after a hyphen or slash), at desktop and at phone
width (:func:`broken_cells`); a self-check proves it fails on the old ``overflow-wrap:
anywhere`` in narrow cells.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import FINISHED_PARAMS, ROOT, small_params

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                "(pip install -e '.[test]')")


def _find(name: str, default: str) -> str | None:
    return default if os.access(default, os.X_OK) else shutil.which(name)


CHROMIUM = _find("chromium", "/usr/bin/chromium")
CHROMEDRIVER = _find("chromedriver", "/usr/bin/chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("chromium and chromedriver are needed for the browser test (Debian packages "
                "'chromium' and 'chromium-driver'; .ci/run installs them)", allow_module_level=True)

ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = (1200, 2000)
PHONE = (390, 844)
MAX_SHOT_HEIGHT = 16000
ALLOWED_SCHEMES = ("file:", "data:")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(120)
    drv.get("about:blank")           # the start page's own chrome:// loads land in the log now,
    time.sleep(1.0)                  # not in the first page's check
    _drain_logs(drv)
    yield drv
    drv.quit()


# ------------------------------------------------------------ the checker
def _drain_logs(drv) -> None:
    drv.get_log("performance")
    drv.get_log("browser")


def _wait(drv, script: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if drv.execute_script(script):
            return
        time.sleep(0.1)


def _screenshot(drv, dest: Path, width: int, height: int, mobile: bool) -> Path:
    """Full-page PNG at ``width`` CSS pixels (height capped at MAX_SHOT_HEIGHT)."""
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": 1,
                         "mobile": mobile})
    try:
        time.sleep(0.2)
        metrics = drv.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        full_h = min(int(size["height"]) + 1, MAX_SHOT_HEIGHT)
        shot = drv.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": full_h, "scale": 1}})
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(base64.b64decode(shot["data"]))
        overflow = drv.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth")
    finally:
        drv.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return dest, overflow


def check_page(drv, html_path: Path, shot_name: str | None = None) -> dict:
    """Open ``html_path``; return {"problems": [...], "images": n, "requests": [...], ...}."""
    _drain_logs(drv)
    drv.get(Path(html_path).resolve().as_uri())
    _wait(drv, "return document.readyState === 'complete'")
    _wait(drv, "return Array.from(document.images).every(i => i.complete)")
    time.sleep(0.3)                        # let late requests / console messages be logged
    problems = []
    imgs = drv.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src') || '', "
        "i.naturalWidth, i.complete])")
    if not imgs:
        problems.append("no <img> on the page: the plots are missing")
    for src, width, _ in imgs:
        if not width:
            problems.append(f"broken image (naturalWidth 0): {src[:80]}")
    requests = []
    for entry in drv.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            url = (msg["params"].get("request") or {}).get("url") or msg["params"].get("url", "")
            requests.append(url)
            if not url.startswith(ALLOWED_SCHEMES):
                problems.append(f"network request: {url}")
    console = drv.get_log("browser")
    problems += [f"console {c['level']}: {c['message']}" for c in console if c["level"] == "SEVERE"]
    out = {"problems": problems, "images": len(imgs), "requests": requests,
           "console": console}
    if shot_name:
        out["desktop"], _ = _screenshot(drv, ARTIFACTS / f"{shot_name}-desktop.png", *DESKTOP,
                                        mobile=False)
        out["phone"], out["phone_overflow_px"] = _screenshot(
            drv, ARTIFACTS / f"{shot_name}-phone-{PHONE[0]}px.png", *PHONE, mobile=True)
    return out


def assert_clean(result: dict) -> None:
    assert not result["problems"], "\n".join(result["problems"])
    assert result["images"] >= 1
    for key in ("desktop", "phone"):
        if key in result:
            assert result[key].is_file() and result[key].stat().st_size > 10_000, result[key]


# one number per cell, as the report writes them (1,215.788  12.3*  2.60e-3×  85.00 %  8)
NUMBER_JS = r"/^[-+]?(\d[\d,]*(\.\d+)?|\.\d+)(e[-+]?\d+)?( ?(%|×|\*))?$/"
BROKEN_CELLS_JS = """
const number = %s;
const out = [];
for (const td of document.querySelectorAll('table.zr-table td')) {
  const text = td.textContent.trim();
  if (!text || td.classList.contains('zr-long')) continue;   // hashes, paths: may wrap
  // every line break between two visible characters: allowed only at a space or after a
  // hyphen or slash; in a cell that is one number, none at all
  let prev = null, prevTop = null, gap = false, lines = 1, bad = false;
  const walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.length; i++) {
      const ch = node.data[i];
      if (/\\s/.test(ch)) { gap = true; continue; }
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const rect = range.getClientRects()[0];
      if (!rect) continue;
      const top = Math.round(rect.top);
      if (prevTop !== null && top > prevTop + 2) {
        lines += 1;
        if (!(gap || '-/'.includes(prev))) bad = true;
      }
      prev = ch; prevTop = top; gap = false;
    }
  }
  if (bad || (number.test(text) && lines > 1)) out.push([text, lines]);
}
return out;
""" % NUMBER_JS


def broken_cells(drv) -> list:
    """[text, lines] of every table cell that wraps inside a number or a word."""
    return drv.execute_script(BROKEN_CELLS_JS)


def broken_cells_at_widths(drv, html_path: Path) -> dict:
    """:func:`broken_cells` of ``html_path`` at desktop and at phone width."""
    drv.get(Path(html_path).resolve().as_uri())
    _wait(drv, "return document.readyState === 'complete'")
    out = {"desktop": broken_cells(drv)}
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True})
    try:
        time.sleep(0.2)
        out["phone"] = broken_cells(drv)
    finally:
        drv.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    out["cells"] = drv.execute_script("return document.querySelectorAll('td.zr-num').length")
    return out


# ------------------------------------------------------------ pages under test
@pytest.fixture(scope="module")
def report_run(finished_run):
    """A real report: the suite's shared run (every notebook executed by papermill on 12 demo
    images, two backends)."""
    return finished_run


@pytest.fixture(scope="module")
def compare_report(report_run, tmp_path_factory):
    """The comparison of that run with a second, cheaper run (onnxruntime, batch 1, the same
    images)."""
    from zoorepro.report import compare
    from zoorepro import config
    from zoorepro.run import stages
    from zoorepro.run.folder import Run
    tmp = tmp_path_factory.mktemp("browser-compare")
    cfg = config.from_mapping(small_params(tmp, name="ort-only", batch_sizes=[1],
                                           max_images=FINISHED_PARAMS["max_images"]))
    run = Run.create(cfg)
    stages.ensure(run, "evaluate")
    return compare.compare([report_run, run.root], tmp / "out") / "report.html"


def test_run_report_renders_offline_without_errors(driver, report_run):
    result = check_page(driver, report_run / "report.html", "report")
    assert_clean(result)
    assert result["images"] >= 1
    assert result["phone_overflow_px"] <= 2, "the page scrolls sideways at phone width"


def test_compare_report_renders_offline_without_errors(driver, compare_report):
    result = check_page(driver, compare_report, "compare")
    assert_clean(result)
    assert result["phone_overflow_px"] <= 2, "the page scrolls sideways at phone width"
    text = driver.find_element("tag name", "body").text
    assert "Parity of predictions" in text and "100.00 %" in text


@pytest.mark.parametrize("page", ["report", "compare"])
def test_no_cell_wraps_inside_a_number_or_a_word(driver, report_run, compare_report, page):
    path = report_run / "report.html" if page == "report" else compare_report
    got = broken_cells_at_widths(driver, path)
    assert got["cells"] > 20                           # the numeric cells are there
    assert got["desktop"] == [] and got["phone"] == [], got


# ------------------------------------------------------------ the checker can fail
def test_checker_detects_a_number_broken_in_a_cell(driver, report_run, tmp_path):
    """The stylesheet as it was (overflow-wrap: anywhere) in narrow cells breaks numbers."""
    html = (report_run / "report.html").read_text(encoding="utf-8")
    bad = tmp_path / "anywhere.html"
    bad.write_text(html.replace("</style>", ".zr-table td { overflow-wrap: anywhere !important; "
                                "white-space: normal !important; width: 1ch; max-width: 1ch; }"
                                "</style>", 1), encoding="utf-8")
    got = broken_cells_at_widths(driver, bad)
    assert any(lines > 1 for _, lines in got["desktop"]), got

def test_checker_detects_a_broken_image(driver, compare_report, tmp_path):
    """On a copy of the compare report (it always embeds its plot), one <img> src broken."""
    html = compare_report.read_text(encoding="utf-8")
    marker = 'src="data:image/png;base64,'
    assert marker in html
    bad = tmp_path / "broken.html"
    bad.write_text(html.replace(marker, marker + "AAAAnotapng", 1), encoding="utf-8")
    problems = check_page(driver, bad)["problems"]
    assert any(p.startswith("broken image") for p in problems), problems


def test_checker_detects_a_network_request(driver, report_run, tmp_path):
    html = (report_run / "report.html").read_text(encoding="utf-8")
    bad = tmp_path / "network.html"
    bad.write_text(html.replace("</body>", '<img src="http://127.0.0.1:9/x.png"></body>', 1),
                   encoding="utf-8")
    problems = check_page(driver, bad)["problems"]
    assert any(p == "network request: http://127.0.0.1:9/x.png" for p in problems), problems
