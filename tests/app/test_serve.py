"""The demo app served: in Debian's headless Chromium (selenium) the page shows, for an uploaded digits image,
the label hfcls-demo gives it, and a file that is not an image as a message; the port is checked first."""

import os
import shutil
import socket
import tempfile

import numpy as np
import pytest
from PIL import Image

from hfcls.app.serve import check_port, start_app
from hfcls.errors import HfclsError
from hfcls.inference import classify_images

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,1000",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium through chromedriver, on a fresh profile. Missing, it skips the test, except under
    CI=true, where it fails it (make test installs it: the Makefile's browser target)."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        message = "no chromium and chromedriver on PATH: apt-get install -y chromium chromium-driver (make browser)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    yield chrome
    chrome.quit()


def test_the_page_shows_hfcls_demos_label_for_an_uploaded_digit(trained_digits, digits_dir, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, work = trained_digits
    image = sorted((digits_dir / "val" / "3").glob("*.png"))[0]
    [(_, expected)] = classify_images(str(image), work / "best", num_workers=0)
    app = start_app(work / "best", port=free_port(), examples=digits_dir / "val" / "7")
    try:
        assert app.url.startswith("http://127.0.0.1:")
        browser.get(app.url)
        wait = WebDriverWait(browser, 30)
        wait.until(lambda page: page.find_element(By.CSS_SELECTOR, "#image input[type=file]")).send_keys(str(image))
        shown = wait.until(lambda page: page.find_element(By.CSS_SELECTOR, "#prediction h2").text)
        assert shown == expected[0]["label"]
        bars = browser.find_elements(By.CSS_SELECTOR, "#prediction dl")
        assert [bar.find_element(By.TAG_NAME, "dt").text for bar in bars] == [p["label"] for p in expected]
        assert [bar.find_element(By.TAG_NAME, "dd").text for bar in bars] == [f"{p['score']:.0%}" for p in expected]
        screenshot = tmp_path / "app.png"
        assert browser.save_screenshot(str(screenshot))
        # A file that is not an image, named .png so the page's file filter lets it through: a message.
        fake = tmp_path / "notes.png"
        fake.write_text("not pixels")
        browser.find_element(By.CSS_SELECTOR, "#image button[aria-label='Remove Image']").click()
        browser.find_element(By.CSS_SELECTOR, "#image input[type=file]").send_keys(str(fake))
        # Gradio shows its progress ("processing | 0.2s") in the element until the answer replaces it.
        wait.until(lambda page: "is not an image" in page.find_element(By.ID, "message").text)
        message = browser.find_element(By.ID, "message").text.splitlines()[-1]
        assert message.startswith("notes.png is not an image hfcls can read")
    finally:
        app.close()
    with Image.open(screenshot) as picture:
        assert picture.format == "PNG" and picture.width == 1200 and picture.height > 600
        pixels = np.asarray(picture.convert("L"))
    assert pixels.std() > 20 and (pixels < 100).mean() > 0.01  # not blank: text, bars and a digit drawn


def test_a_port_in_use_or_a_foreign_host_is_refused_before_any_work():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HfclsError, match=f"^port {port} on 127.0.0.1 is in use .*pass --port with a free one"):
            check_port("127.0.0.1", port)
    check_port("127.0.0.1", port)  # free again once its server is gone
    with pytest.raises(HfclsError, match="^host 192.0.2.1: not an address of this machine"):
        check_port("192.0.2.1", port)  # TEST-NET-1: never this machine's
    with pytest.raises(HfclsError, match="^port 70000: a TCP port is 1 to 65535"):
        check_port("127.0.0.1", 70000)
