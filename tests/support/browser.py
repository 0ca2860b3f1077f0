"""The Debian chromium package driven through Selenium (chromium-driver), headless, offline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium(workdir: Path) -> Any:
    """A headless chromium with its own profile in ``workdir``; fails loudly when it is missing
    (it comes from apt with `make test`: scripts/install-system.sh)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            raise RuntimeError(f"{path} is missing: apt install chromium chromium-driver")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for a browser on the network
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={workdir / 'chromium-profile'}",
        "--window-size=1280,900",
    ):
        opts.add_argument(arg)
    service = Service(CHROMEDRIVER, log_output=str(workdir / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(30)
    return driver
