"""Debian's Chromium, headless, on a page with one more script of the test's: the DOM after it ran.

The probe script is added before </body> and allowed by its own SHA-256 in the page's
Content-Security-Policy, next to whatever the page allows; the page's own script therefore
runs only if the page's policy allows it. Nothing here downloads a browser.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def run_probe(page: str, probe: str, tmp_path: Path) -> object:
    """Load page in headless Chromium with probe added; probe must set document.title to JSON once
    done (it may wait for the load event). Returns that JSON, parsed."""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("headless Chromium is needed to check the report: apt-get install chromium (make test does)")
    digest = base64.b64encode(hashlib.sha256(probe.encode()).digest()).decode()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1)
    allowed = re.sub(r"script-src ", f"script-src 'sha256-{digest}' ", policy) if "script-src" in policy else (
        f"{policy}; script-src 'sha256-{digest}'")  # fmt: skip
    probed = page.replace(policy, allowed, 1).replace("</body>", f"<script>{probe}</script></body>", 1)
    path = tmp_path / "probed.html"
    path.write_text(probed)
    done = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
         path.as_uri()],
        capture_output=True, text=True, timeout=120, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", done.stdout, re.S)
    assert title, done.stdout[:2000]
    return json.loads(html.unescape(title.group(1)))
