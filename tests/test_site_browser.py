"""The catalog in a real browser: headless Chromium driven by selenium, pages opened from file://.

Needs Chromium and its driver (``apt-get install chromium chromium-driver``; the Makefile installs
them). Missing, the test fails saying so: a catalog nobody opened in a browser is not tested.
``GRADHUB_UPDATE_SCREENSHOT=1`` also writes the index page's screenshot to ``docs/catalog.png``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gradhub
from gradhub.site import write_site
from tests.test_site import figure_claim

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "catalog.png"
WINDOW = (1280, 900)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(
            f"the browser test needs {' and '.join(missing)}: install Chromium and its driver with "
            "`apt-get install chromium chromium-driver`",
            pytrace=False,
        )
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver's path given explicitly: selenium-manager never looks for one (nor goes online).
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        yield driver
    finally:
        driver.quit()


def visible_methods(driver: Any) -> set[str]:
    """The names of the rows a reader sees (hidden rows have no layout box)."""
    return set(
        driver.execute_script(
            "return Array.from(document.querySelectorAll('#methods tbody tr'))"
            ".filter(row => row.offsetParent !== null).map(row => row.querySelector('th').textContent)"
        )
    )


def matching(query: str, kind: str | None = None) -> set[str]:
    """What the search should show, from the specs: every word in the name, summary, paper or tags."""
    names = set()
    for entry in gradhub.list(kind=kind):
        if entry.error:
            continue
        spec = gradhub.spec(entry.name)
        paper = spec.paper
        fields = [spec.name, *spec.aliases, spec.summary, paper.title, *paper.authors, paper.venue or ""]
        text = " ".join([*fields, str(paper.year), paper.arxiv or "", *spec.tags]).lower()
        if all(word in text for word in query.lower().split()):
            names.add(spec.name)
    return names


def severe(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_catalog_in_chromium(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from gradhub.report import write_report

    report = tmp_path / "report"
    write_report([figure_claim()], report, draw=True)  # the demo's report folder, with the catalog in it
    everything = {entry.name for entry in gradhub.list() if entry.error is None}
    total = len(everything)

    browser.get((report / "index.html").as_uri())
    count = browser.find_element(By.ID, "count")
    search = browser.find_element(By.ID, "q")
    assert browser.find_element(By.ID, "filters").is_displayed()  # the script ran and showed the filters
    assert visible_methods(browser) == everything and count.text == f"{total} methods"

    search.send_keys("adamp")
    assert visible_methods(browser) == matching("adamp") and {"adamp", "sgdp"} <= matching("adamp")
    assert count.text == f"{len(matching('adamp'))} of {total} methods"
    search.clear()
    search.send_keys("Scale INVARIANT")  # every word, in any case
    assert visible_methods(browser) == matching("scale invariant") != set()
    search.send_keys(" zzz-no-such-method")
    assert visible_methods(browser) == set() and browser.find_element(By.ID, "no-match").is_displayed()

    browser.find_element(By.CSS_SELECTOR, "#filters button[type=reset]").click()
    WebDriverWait(browser, 5).until(lambda driver: len(visible_methods(driver)) == total)
    kind = Select(browser.find_element(By.ID, "kind"))
    kind.select_by_value("solver")
    solvers = {entry.name for entry in gradhub.list(kind="solver") if entry.error is None}
    assert visible_methods(browser) == solvers and len(solvers) >= 2
    kind.select_by_value("optimizer")
    search.send_keys("sgd")
    assert visible_methods(browser) == matching("sgd", kind="optimizer") != set()
    search.clear()
    Select(browser.find_element(By.ID, "capability")).select_by_value("fsdp2:tested")
    fsdp2 = {name for name in everything if getattr(gradhub.spec(name).capabilities, "fsdp2", None)}
    fsdp2 = {name for name in fsdp2 if gradhub.spec(name).capabilities.fsdp2.status == "tested"}
    assert visible_methods(browser) == fsdp2 != set()
    assert severe(browser) == []

    browser.find_element(By.LINK_TEXT, "adamp").click()
    WebDriverWait(browser, 5).until(lambda driver: driver.title.startswith("adamp"))
    assert browser.title == "adamp (optimizer) — gradhub"
    assert browser.find_element(By.TAG_NAME, "h1").text == "adamp optimizer"
    rows = browser.find_elements(By.CSS_SELECTOR, "#hyperparameters-table tbody tr")
    spec = gradhub.spec("adamp")
    assert [row.find_element(By.TAG_NAME, "th").text for row in rows] == list(spec.params.model_fields)
    assert rows[0].find_elements(By.TAG_NAME, "td")[0].text == repr(spec.params.model_fields["lr"].default)

    loaded = "return Array.from(document.images).map(image => [image.getAttribute('src'), image.complete])"
    WebDriverWait(browser, 5).until(lambda driver: all(done for _, done in driver.execute_script(loaded)))
    images = browser.execute_script(
        "return Array.from(document.images).map(image => [image.getAttribute('src'), image.complete, "
        "image.naturalWidth])"
    )
    assert images and all(complete and width > 0 for _, complete, width in images), images
    copy = browser.find_element(By.CSS_SELECTOR, "button[data-copy=bibtex]")
    copy.click()
    status = browser.find_element(By.CSS_SELECTOR, "button[data-copy=bibtex] + .copy-status")
    WebDriverWait(browser, 5).until(lambda driver: status.text)
    assert status.text in ("Copied.", "Selected: press Ctrl+C (Cmd+C) to copy.")
    assert severe(browser) == []

    # The screenshot: the index page of the catalog of the methods installed here.
    plain = write_site(tmp_path / "catalog").index
    browser.get(plain.as_uri())
    assert visible_methods(browser) == everything and severe(browser) == []
    assert browser.save_screenshot(str(tmp_path / "catalog.png"))
    if os.environ.get("GRADHUB_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "catalog.png", SCREENSHOT)
