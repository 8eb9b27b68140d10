"""Headless Chromium for the report tests and benchmark: Debian's `chromium` driven through
its `chromedriver` by Selenium, with the driver's path given so that Selenium downloads
nothing (.ci/run installs both packages when they are absent)."""

import contextlib
import os
import shutil
import tempfile

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# No GPU, no sandbox (root in CI), nothing fetched from the network behind the page's back.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--mute-audio")


def missing() -> str:
  """Why the browser cannot run here, or "" when it can."""
  for path in (CHROMIUM, CHROMEDRIVER):
    if not os.access(path, os.X_OK):
      return (f"{path} is absent: apt-get install chromium chromium-driver (.ci/run does "
              "this)")
  return ""


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000):
  """A Selenium WebDriver on a fresh headless Chromium profile; console messages are kept
  (`driver.get_log("browser")`)."""
  from selenium import webdriver  # pylint: disable=import-outside-toplevel
  from selenium.webdriver.chrome.service import Service  # pylint: disable=import-outside-toplevel
  profile = tempfile.mkdtemp(prefix="chromium-profile-")
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in FLAGS:
    options.add_argument(flag)
  options.add_argument(f"--user-data-dir={profile}")
  options.add_argument(f"--window-size={width},{height}")
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
  try:
    yield driver
  finally:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list:
  """Console errors and uncaught exceptions since the last call."""
  return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_for(driver, script: str, timeout: float = 10.0):
  """Waits until the JavaScript expression `script` is truthy and returns its value."""
  from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=import-outside-toplevel
  return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(f"return {script};"))
