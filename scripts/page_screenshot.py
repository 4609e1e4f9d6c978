r"""A screenshot of the service's web page after a photo upload (the README's picture).

    python scripts/page_screenshot.py --url=http://127.0.0.1:8000 \
        --photo=fashion_jax/data/sample/images/10007.jpg --out=docs/images/serve_page.png

Drives Debian's headless Chromium through Selenium (`apt-get install chromium
chromium-driver`); the executables are named explicitly, as Selenium Manager would try
to download a browser.
"""

import argparse
import os
import shutil


def open_browser(width: int = 1280, height: int = 900):
  """Headless Chromium, or None when chromium / chromedriver are not installed."""
  binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
  if not binary or not driver:
    return None
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  options = webdriver.ChromeOptions()
  options.binary_location = binary
  for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               f"--window-size={width},{height}"):
    options.add_argument(flag)
  return webdriver.Chrome(options=options, service=Service(driver))


def upload_and_wait(browser, url: str, photo: str, results: int = 12, timeout: float = 60):
  """Opens the page, uploads `photo`, waits for its tags and `results` loaded images."""
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support.ui import WebDriverWait
  loaded = ("return [...document.querySelectorAll('#results img')].map("
            "i => i.complete && i.naturalWidth > 0)")
  browser.get(url + "/")
  browser.find_element(By.ID, "file-input").send_keys(os.path.abspath(photo))
  wait = WebDriverWait(browser, timeout)
  wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#tags .tag-row")) > 0)
  wait.until(lambda b: (lambda s: len(s) == results and all(s))(b.execute_script(loaded)))
  return wait, loaded


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--url", default="http://127.0.0.1:8000")
  parser.add_argument("--photo", required=True)
  parser.add_argument("--out", default="docs/images/serve_page.png")
  args = parser.parse_args()
  browser = open_browser()
  if browser is None:
    raise SystemExit("needs chromium and chromium-driver (apt-get install chromium "
                     "chromium-driver)")
  try:
    upload_and_wait(browser, args.url, args.photo)
    browser.save_screenshot(args.out)
  finally:
    browser.quit()
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
