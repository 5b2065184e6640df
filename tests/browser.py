"""Open a built report in headless Chromium (Debian's ``chromium``, driven by Playwright) and check it
as a reader would: the index loads without console errors, every image has loaded, every link of
the site resolves; a screenshot of the index is written. Used by ``test_report.py``."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlparse

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# the flags a closed network needs: no background connections, no first-run, no sandbox as root
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    return next((p for p in CHROMIUM_PATHS if Path(p).is_file()), None) or shutil.which("chromium")


def why_no_browser() -> str | None:
    """A reason to skip the browser test, or None when it can run."""
    if chromium() is None:
        return "no Chromium (Debian's chromium package; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "no Playwright (pip install playwright; no browser download is needed)"
    return None


@contextmanager
def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (a free port); yields the base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # no access log on the test's output
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    server.handle_error = lambda *args: None  # a browser closing a connection early is not an error of the site
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Visit:
    console_errors: list[str] = field(default_factory=list)
    images: list[tuple[str, int]] = field(default_factory=list)  # (src, natural width)
    links: list[str] = field(default_factory=list)  # absolute URLs of the site's links
    broken: list[str] = field(default_factory=list)
    pages: int = 0


def check_site(base: str, screenshot: Path, max_pages: int = 200) -> Visit:
    """Visit the index and every page of the site it links to (same host), in the browser; fetch
    every other same-site link (CSV, PNG) over HTTP."""
    from playwright.sync_api import sync_playwright

    visit = Visit()
    seen, queue = set(), [urljoin(base, "index.html")]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console",
                lambda m: visit.console_errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: visit.console_errors.append(f"{page.url}: {e}"))
        while queue and visit.pages < max_pages:
            url = queue.pop(0)
            if url in seen:
                continue
            seen.add(url)
            if not url.endswith(".html"):
                try:
                    with urllib.request.urlopen(url, timeout=10) as response:
                        ok = response.status == 200
                except urllib.error.URLError:
                    ok = False
                if not ok:
                    visit.broken.append(url)
                continue
            response = page.goto(url, wait_until="load")
            visit.pages += 1
            if response is None or response.status != 200:
                visit.broken.append(url)
                continue
            if visit.pages == 1:
                page.screenshot(path=str(screenshot), full_page=True)
            for src, width in page.eval_on_selector_all(
                    "img", "els => els.map(e => [e.currentSrc || e.src, e.complete ? e.naturalWidth : 0])"):
                visit.images.append((f"{url} -> {src[:80]}", int(width)))
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                target = href.split("#")[0]
                if urlparse(target).netloc == urlparse(base).netloc:
                    visit.links.append(target)
                    if target not in seen:
                        queue.append(target)
        browser.close()
    return visit
