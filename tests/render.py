"""Render a local HTML page as a person would see it: headless Chromium (Debian's `chromium`) with
the network off, to a screenshot and to the DOM after its scripts ran.

    page = render(Path("report/index.html"), tmp_path / "report.png", probe="document.images.length")
    assert not page.image().blank()
    assert page.probe == 3

A page that needs something from the internet (a script or stylesheet from a CDN) renders here
as it would on a cluster without internet: name resolution fails for every host but localhost,
and every request that would still leave goes to a proxy nobody listens on. `make test`
installs Chromium (the Makefile's `chromium` target).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np

CHROMIUM = "chromium"
# A probe listing each image of a page by id, and whether it decoded with pixels (a broken or
# missing image has naturalWidth 0).
IMAGES_DRAWN = "Array.from(document.images).map(i => [i.id, i.complete && i.naturalWidth > 0])"
_PROBE_ATTRIBUTE = "data-render-probe"
_SETTLE_MS = 1000  # virtual milliseconds after `load` before the probe runs (less than budget_ms)
# Every request for a host resolves to nothing, and a request that needs no resolution goes to a
# port nobody listens on (port 9, "discard"): a page renders as it would with no network at all,
# also on a machine that has internet. file:// pages and their local files are unaffected.
_OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost", "--proxy-server=127.0.0.1:9"]
# Nothing else may reach out either (component updates, field trials), nor share a profile with
# another test's Chromium: each render gets a fresh one.
_QUIET = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--hide-scrollbars", "--force-color-profile=srgb",
]


@dataclass(frozen=True)
class Image:
    """A decoded screenshot: height x width x channels, 8 bits each."""

    pixels: np.ndarray

    def colours(self) -> int:
        """How many distinct colours the image holds."""
        flat = self.pixels.reshape(-1, self.pixels.shape[2]).astype(np.uint32)
        packed = sum(flat[:, channel] << (8 * channel) for channel in range(flat.shape[1]))
        return len(np.unique(packed))

    def ink(self) -> float:
        """The share of pixels that are not white (anything drawn: text, borders, fills)."""
        rgb = self.pixels[:, :, :3]
        return float((rgb < 250).any(axis=2).mean())

    def blank(self, min_colours: int = 8, min_ink: float = 0.005) -> bool:
        """Whether the image is (nearly) empty: one flat colour, or hardly anything drawn."""
        return self.colours() < min_colours or self.ink() < min_ink


@dataclass(frozen=True)
class Rendered:
    """What Chromium made of a page."""

    screenshot: Path  # PNG of the window (`width` x `height`)
    dom: str  # the DOM after the page's scripts ran, serialised
    probe: Any  # the JSON value of the probe expression, evaluated after `load`; None without one
    log: str  # Chromium's stderr (console messages, failed loads)

    def image(self) -> Image:
        """The screenshot, decoded."""
        return Image(decode_png(self.screenshot.read_bytes()))

    def cells(self) -> list[str]:
        """The text of every table cell (`td`) of the rendered DOM, in order: what a table built by
        a script shows (its data sits in the page's scripts beforehand, never in cells)."""
        parser = _Cells()
        parser.feed(self.dom)
        return parser.cells


def chromium() -> str:
    """The Chromium executable; fails the test with how to install it when there is none."""
    found = shutil.which(CHROMIUM)
    if found is None:
        raise RuntimeError("no `chromium` on PATH: `make test` installs it (apt-get install chromium)")
    return found


def render(
    page: Path,
    out: Path,
    *,
    probe: str | None = None,
    width: int = 1280,
    height: int = 1000,
    budget_ms: int = 5000,
    timeout: float = 60,
) -> Rendered:
    """Render the local HTML file `page` offline, its screenshot to `out`.

    Args:
        page: the HTML file.
        out: where to write the PNG (a test's tmp_path: never beside the page, whose folder a
            test may compare before and after).
        probe: a JavaScript expression evaluated once the page has loaded (scripts, styles and
            images done) and its timers had a second of virtual time to fire (jQuery's ready
            handlers), e.g. a computed style or a count of elements; its JSON value is
            returned. The page is rendered from a copy beside it (so its relative links hold)
            with one script added at the end, removed afterwards.
        width, height: the window, in CSS pixels (the screenshot's size).
        budget_ms: virtual time the page's scripts get before the DOM is taken: timers fire
            without waiting in real time.
        timeout: seconds before Chromium is killed and the test fails.

    Returns:
        The screenshot, the DOM, the probe's value and Chromium's log.
    """
    page, out = page.resolve(), out.resolve()
    target = page
    if probe is not None:
        target = page.with_name(f".probe-{os.getpid()}-{page.name}")
        target.write_text(_with_probe(page.read_text(encoding="utf-8"), probe), encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            done = subprocess.run(
                [chromium(), *_QUIET, *_OFFLINE, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                 f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", "--dump-dom", target.as_uri()],
                capture_output=True, text=True, timeout=timeout,
            )
    finally:
        if target != page:
            target.unlink(missing_ok=True)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium failed on {page} (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return Rendered(out, done.stdout, _probe_value(done.stdout) if probe is not None else None, done.stderr)


def _with_probe(html: str, expression: str) -> str:
    """`html` with a script that stores `expression`'s JSON value on <body> once the page has settled.

    Settled: the load event, then a while longer. jQuery runs its ready handlers (where
    bootstrap-table builds the tables marked data-toggle="table") from a timer, which may come
    after `load`; the wait is in the page's virtual time, so it costs no real time.
    """
    script = (
        "<script>window.addEventListener('load', function () { setTimeout(function () { var value;"
        f" try {{ value = ({expression}); }} catch (error) {{ value = {{error: String(error)}}; }}"
        f" document.body.setAttribute('{_PROBE_ATTRIBUTE}', JSON.stringify(value === undefined ? null : value));"
        f" }}, {_SETTLE_MS}); }});</script>"
    )
    at = html.lower().rfind("</body>")
    return html + script if at < 0 else html[:at] + script + html[at:]


def _probe_value(dom: str) -> Any:
    parser = _BodyAttribute(_PROBE_ATTRIBUTE)
    parser.feed(dom)
    if parser.value is None:
        raise RuntimeError("the probe never ran: the page did not load and settle within the virtual time budget")
    return json.loads(parser.value)


class _BodyAttribute(HTMLParser):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name, self.value = name, None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.value = dict(attrs).get(self.name)


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self._parts: list[list[str]] = []
        self._open = 0

    @property
    def cells(self) -> list[str]:
        return [" ".join(part for part in parts if part) for parts in self._parts]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "td":
            self._open += 1
            self._parts.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._open:
            self._open -= 1

    def handle_data(self, data: str) -> None:
        if self._open:
            self._parts[-1].append(data.strip())


def decode_png(data: bytes) -> np.ndarray:
    """Decode an 8-bit, non-interlaced greyscale, RGB or RGBA PNG (what Chromium writes) without Pillow.

    Returns:
        height x width x channels, uint8.
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    position, chunks, header = 8, [], b""
    while position < len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind, body = data[position + 4:position + 8], data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour_type, interlace = header[8], header[9], header[12]
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour_type)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour_type}, interlace {interlace}")
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), dtype=np.uint8).reshape(height, 1 + width * channels)
    rows = np.zeros((height, width * channels), dtype=np.uint8)
    previous = np.zeros(width * channels, dtype=np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 1:  # Sub: each byte adds the one a pixel to its left, per channel: a running sum
            line = np.cumsum(line.reshape(width, channels), axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            line = (line + previous) % 256
        elif kind in (3, 4):  # Average, Paeth: depend on the decoded left neighbour, byte by byte
            line = _sequential(line, previous, channels, kind)
        elif kind != 0:
            raise ValueError(f"bad PNG filter {kind} on row {y}")
        rows[y] = line
        previous = line.astype(np.int32)
    return rows.reshape(height, width, channels)


def _sequential(line: np.ndarray, above: np.ndarray, channels: int, kind: int) -> np.ndarray:
    out = [0] * len(line)
    values, up = line.tolist(), above.tolist()
    for i, value in enumerate(values):
        left = out[i - channels] if i >= channels else 0
        if kind == 3:
            out[i] = (value + (left + up[i]) // 2) % 256
            continue
        corner = up[i - channels] if i >= channels else 0
        estimate = left + up[i] - corner
        distances = (abs(estimate - left), abs(estimate - up[i]), abs(estimate - corner))
        predictor = left if distances[0] <= distances[1] and distances[0] <= distances[2] else (
            up[i] if distances[1] <= distances[2] else corner)
        out[i] = (value + predictor) % 256
    return np.array(out, dtype=np.int32)
