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
import subprocess
from pathlib import Path

import numpy as np

from fmnist import data

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def run_probe(chromium: str, page: str, probe: str, tmp_path: Path) -> object:
    """Load page in headless Chromium (the executable chromium, the conftest fixture of that name) with probe
    added; probe must set document.title to JSON once done (it may wait for the load event). Returns that
    JSON, parsed."""
    digest = base64.b64encode(hashlib.sha256(probe.encode()).digest()).decode()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1)
    allowed = re.sub(r"script-src ", f"script-src 'sha256-{digest}' ", policy) if "script-src" in policy else (
        f"{policy}; script-src 'sha256-{digest}'")  # fmt: skip
    probed = page.replace(policy, allowed, 1).replace("</body>", f"<script>{probe}</script></body>", 1)
    path = tmp_path / "probed.html"
    path.write_text(probed)
    done = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
         path.as_uri()],
        capture_output=True, text=True, timeout=120, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", done.stdout, re.S)
    assert title, done.stdout[:2000]
    return json.loads(html.unescape(title.group(1)))


# Clicks every cell of the confusion matrix and every class name, noting what the viewer then shows.
CLICK_EVERYTHING = """window.addEventListener("load", () => {
  const viewer = document.getElementById("viewer");
  const hidden = viewer.hidden;
  const shown = (cell) => {
    cell.click();
    return {heading: viewer.querySelector("h3").textContent, hidden: viewer.hidden,
            indices: [...viewer.querySelectorAll("figure.thumb")].map((f) => +f.dataset.index),
            captions: [...viewer.querySelectorAll("figure.thumb figcaption")].map((c) => c.textContent)};
  };
  const cells = [...document.querySelectorAll("td[data-true]")]
    .map((c) => [+c.dataset.true, +c.dataset.predicted, shown(c)]);
  const classes = [...document.querySelectorAll("td[data-class]")].map((c) => [+c.dataset.class, shown(c)]);
  const tile = document.querySelector("#viewer .tile");
  const style = getComputedStyle(tile);
  const sprite = new Image();
  sprite.onload = () => { document.title = JSON.stringify({hidden, cells, classes, js: document.body.className,
    sprite: [sprite.naturalWidth, sprite.naturalHeight], size: [tile.offsetWidth, tile.offsetHeight],
    position: style.backgroundPosition, index: +tile.parentElement.dataset.index}); };
  sprite.src = style.backgroundImage.slice(5, -2);
});"""


def check_clicks(result: dict, labels: np.ndarray, probs: np.ndarray, confusion: np.ndarray) -> None:
    """What CLICK_EVERYTHING saw agrees with the test set: every cell shows exactly its images, most
    confident first, and every class its most confident mistakes."""
    names = list(data.LABELS)
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    assert result["hidden"] is True and result["js"] == "js"
    assert len(result["cells"]) == 100 and len(result["classes"]) == 10
    for t, p, shown in result["cells"]:
        expected = np.flatnonzero((labels == t) & (predicted == p))
        assert len(shown["indices"]) == confusion[t, p] == len(expected)
        assert sorted(shown["indices"]) == expected.tolist() and not shown["hidden"]
        assert f"{confusion[t, p]} test images" in shown["heading"]
        probabilities = [float(c.rsplit("(", 1)[1].rstrip(")")) for c in shown["captions"]]
        assert all(c.startswith(f"{names[t]} / {names[p]} (") for c in shown["captions"])
        assert probabilities == sorted(probabilities, reverse=True)
        assert np.allclose(probabilities, confidence[shown["indices"]], atol=0.0056)  # rounded twice
    for c, shown in result["classes"]:
        wrong = np.flatnonzero((labels == c) & (predicted != c))
        assert len(shown["indices"]) == min(len(wrong), 24) and set(shown["indices"]) <= set(wrong.tolist())
        left_out = np.setdiff1d(wrong, shown["indices"])
        if len(left_out):
            assert confidence[shown["indices"]].min() >= confidence[left_out].max() - 5e-4
