"""The test helper that renders pages in headless Chromium (tests/render.py): its PNG decoder,
its blank-page check and its network switched off."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from tests.render import Image, decode_png, render


def _png(pixels: np.ndarray, filters: list[int]) -> bytes:
    """Encode `pixels` (height x width x 3) as a PNG whose row y uses the filter `filters[y]`."""
    height, width, channels = pixels.shape
    rows = pixels.reshape(height, width * channels).astype(np.int32)
    body = b""
    for y, kind in enumerate(filters):
        line, above = rows[y], rows[y - 1] if y else np.zeros_like(rows[0])
        left = np.concatenate([np.zeros(channels, np.int32), line[:-channels]])
        corner = np.concatenate([np.zeros(channels, np.int32), above[:-channels]])
        if kind == 4:
            estimate = left + above - corner
            da, db, dc = abs(estimate - left), abs(estimate - above), abs(estimate - corner)
            predictor = np.where((da <= db) & (da <= dc), left, np.where(db <= dc, above, corner))
        else:
            predictor = [np.zeros_like(line), left, above, (left + above) // 2][kind]
        body += bytes([kind]) + ((line - predictor) % 256).astype(np.uint8).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


def test_the_png_decoder_undoes_every_filter() -> None:
    pixels = np.random.default_rng(7).integers(0, 256, size=(10, 7, 3), dtype=np.uint8)
    filters = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]
    assert np.array_equal(decode_png(_png(pixels, filters)), pixels)


def test_blank_is_one_flat_colour_or_hardly_any_ink() -> None:
    white = np.full((100, 100, 3), 255, np.uint8)
    assert Image(white).blank() and Image(np.zeros_like(white)).blank()
    drawn = white.copy()
    drawn[10:90, 10:90] = np.random.default_rng(1).integers(0, 200, size=(80, 80, 3), dtype=np.uint8)
    assert not Image(drawn).blank()


def test_render_sees_local_files_and_scripts_but_not_the_network(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "local.js").write_text("document.getElementById('from-script').textContent = 'local script ran';")
    (site / "page.html").write_text(
        "<html><body style='font: 32px sans-serif'><h1>Report</h1><table><tr><td id='from-script'></td></tr></table>"
        "<script src='local.js'></script><script src='https://unpkg.com/jquery@3.7.1/dist/jquery.min.js'></script>"
        "<img id='remote' src='http://example.com/logo.png'></body></html>"
    )
    (site / "empty.html").write_text("<html><body></body></html>")

    page = render(site / "page.html", tmp_path / "page.png", probe="{jquery: typeof jQuery, image: document.getElementById('remote').naturalWidth}")

    assert page.cells() == ["local script ran"]
    assert page.probe == {"jquery": "undefined", "image": 0}  # neither remote file arrived
    assert not page.image().blank()
    assert render(site / "empty.html", tmp_path / "empty.png").image().blank()
    assert sorted(p.name for p in site.iterdir()) == ["empty.html", "local.js", "page.html"]  # the probe's copy is gone
