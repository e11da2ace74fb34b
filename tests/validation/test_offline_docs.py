"""Data Docs without internet: vendored assets, localized pages, rendered in Chromium with the network off."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterator

import great_expectations
import great_expectations.expectations as gxe
import pandas as pd
import pytest

from nightjar.config import Config
from tests.render import render
from validation import offline_docs, results

GX_VIEWS = Path(great_expectations.__file__).parent / "render" / "view"
RUNS = ("night-1", "night-2")
# What the pages compute once their scripts and styles are in: Bootstrap's navbar is a flex box
# (a plain <nav> is a block), bootstrap-table wraps the tables it builds, the logo is an image
# that loaded, and the browser tried no remote URL at all (failed loads are listed too).
PROBE = """{
  navbar: getComputedStyle(document.querySelector('.navbar')).display,
  tables: document.querySelectorAll('.bootstrap-table').length,
  logo: document.querySelector('.navbar-brand img').naturalWidth,
  remote: performance.getEntriesByType('resource').map(function (e) { return e.name; })
}"""


@pytest.fixture(scope="module")
def site(make_config: Callable[..., Config], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A Data Docs site of two validation runs, one failing: the first built as GX alone builds it
    (its index kept as `../gx-index.html`), the second with Nightjar's localization."""
    lake = tmp_path_factory.mktemp("offline-docs") / "lake"
    config = make_config(lake)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(offline_docs, "localize_site", lambda site: 0)
        first = _run(config, RUNS[0], nulls=[0, 0])
    original = Path(first.index).parents[1] / "gx-index.html"
    shutil.copy(first.index, original)
    second = _run(config, RUNS[1], nulls=[0, 3])
    yield Path(second.index).parent


def _run(config: Config, run_id: str, nulls: list[int]) -> results.StoredRun:
    # The gate's last step on the statistics it computed: a real GX validation, result and Data Docs build.
    statistics = pd.DataFrame({results.STAT_DATE: ["2026-01-10"] * 2, results.STAT_COLUMN: ["a", "b"], "nulls": nulls})
    expectations = [gxe.ExpectColumnValuesToBeBetween(column="nulls", min_value=0, max_value=0)]
    return results.run_suite(config, "features.features", expectations, statistics, run_id)


def test_localize_points_cdn_urls_and_the_logo_at_the_site_copies() -> None:
    jquery = next(a for a in offline_docs.ASSETS if a.package == "jquery")
    popper = next(a for a in offline_docs.ASSETS if a.package == "popper.js")
    page = (
        f'<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css" />'
        f'<script src="{jquery.url}"></script>'
        f'<script src="{popper.url}" integrity="sha384-abc" crossorigin="anonymous"></script>'
        '<style>.navbar-brand a { background: url(\'https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png\') 0 0; }</style>'
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=20261201T120000.000000Z&dataContextId=0b1c" alt="GX"/>'
        '<a href="https://greatexpectations.io">a link, not a load</a>'
    )

    local = offline_docs.localize(page, "../../")

    assert '<script src="../../static/vendor/jquery@3.7.1/dist/jquery.min.js"></script>' in local
    assert '<script src="../../static/vendor/popper.js@1.12.9/dist/umd/popper.min.js"></script>' in local  # no SRI on file://
    assert 'href="../../static/vendor/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css"' in local
    assert '<img src="../../static/images/logo-long.png" alt="GX"/>' in local  # no context id, no timestamp
    assert "url('../../static/images/logo-long.png')" in local
    assert '<a href="https://greatexpectations.io">' in local
    assert offline_docs.remote_resources(page) and offline_docs.remote_resources(local) == []
    assert offline_docs.localize(local, "../../") == local
    assert offline_docs.localize(page, "").count('"static/vendor/') == 3


def test_remote_resources_finds_every_kind_of_load_and_no_link() -> None:
    page = (
        '<script src="//cdn.example/a.js"></script><link rel="preload" href="https://x.example/f.woff2">'
        '<img srcset="small.png 1x, https://x.example/big.png 2x"><iframe src="http://x.example/"></iframe>'
        '<div style="background: url(https://x.example/bg.png)"></div><style>@import "https://x.example/s.css";</style>'
        '<a href="https://x.example/page">a link</a><img src="data:image/png;base64,AAAA"><script src="local.js"></script>'
    )
    assert offline_docs.remote_resources(page) == [
        "//cdn.example/a.js", "https://x.example/f.woff2", "https://x.example/big.png", "http://x.example/",
        "https://x.example/bg.png", "https://x.example/s.css",
    ]


def test_every_resource_gx_templates_load_is_vendored_as_the_same_bytes() -> None:
    assert offline_docs.missing_assets() == [], "run `make setup`"
    loaded = {url for template in (GX_VIEWS / "templates").glob("*.j2")
              for url in offline_docs.remote_resources(template.read_text())}
    # A GX upgrade that links a new CDN file fails here, not in a user's browser.
    assert loaded == {asset.url for asset in offline_docs.ASSETS}
    # Where the templates pin a file by its hash, the vendored file has that hash: the same bytes.
    pinned = {url: digest for template in (GX_VIEWS / "templates").glob("*.j2")
              for url, digest in re.findall(r'src="([^"]+)" integrity="sha384-([^"]+)"', template.read_text())}
    assert len(pinned) == 2
    for asset in offline_docs.ASSETS:
        if asset.url in pinned:
            digest = base64.b64encode(hashlib.sha384((asset.folder / asset.path).read_bytes()).digest()).decode()
            assert digest == pinned[asset.url], asset.url
    # What the vendored stylesheets load (fonts) is vendored with them, nothing remote.
    for asset in offline_docs.ASSETS:
        if asset.path.endswith(".css"):
            assert offline_docs.remote_css((asset.folder / asset.path).read_text()) == [], asset.url


def test_no_page_of_the_site_loads_anything_from_outside(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 4  # the index, the suite, two validation results (the first one localized later)
    for page in pages:
        html = page.read_text()
        assert offline_docs.remote_resources(html) == [], page
        for url in _local_loads(html):
            assert (page.parent / url).resolve().is_file(), f"{page}: {url}"
    # GX's own page of the same site, as GX wrote it, loads from CDNs and from GX's web assets.
    assert len(offline_docs.remote_resources((site.parent / "gx-index.html").read_text())) == 17


def test_localizing_again_changes_nothing(site: Path) -> None:
    before = {path: path.read_bytes() for path in site.rglob("*") if path.is_file()}
    assert offline_docs.localize_site(site) == 0
    assert {path: path.read_bytes() for path in site.rglob("*") if path.is_file()} == before


def test_the_index_lists_the_runs_styled_offline_also_from_a_copy_of_the_site(site: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "data_docs"
    shutil.copytree(site, copy)  # a lake copied elsewhere, or a site pulled from an object store

    page = render(copy / "index.html", tmp_path / "index.png", probe=PROBE)

    assert page.probe["remote"] == []
    assert page.probe["navbar"] == "flex" and page.probe["tables"] == 2 and page.probe["logo"] > 0
    cells = page.cells()
    assert set(RUNS) <= set(cells)  # the validation results list, built by bootstrap-table
    assert cells.count("features.features") >= 4  # each run's suite and asset, and the suites tab
    assert not page.image().blank()


def test_a_validation_result_page_renders_offline(site: Path, tmp_path: Path) -> None:
    failed = next(site.glob(f"validations/features/features/{RUNS[1]}/*/*.html"))

    page = render(failed, tmp_path / "result.png", probe=PROBE)

    assert page.probe["remote"] == []
    assert page.probe["navbar"] == "flex" and page.probe["tables"] >= 1 and page.probe["logo"] > 0
    cells = page.cells()
    assert cells[cells.index("Unsuccessful Expectations") + 1] == "1"
    assert "1 unexpected values found. 50% of 2 total rows." in page.dom
    assert not page.image().blank()


def test_gx_pages_as_gx_writes_them_render_unstyled_and_empty_offline(site: Path, tmp_path: Path) -> None:
    # The bug report, reproduced: the same index before localization, with the network off.
    page = render(site.parent / "gx-index.html", tmp_path / "gx.png", probe=PROBE)

    assert page.probe["navbar"] == "block" and page.probe["tables"] == 0 and page.probe["logo"] == 0
    assert RUNS[0] not in page.cells()
    assert len(page.probe["remote"]) >= 10 and all(url.startswith("https://") for url in page.probe["remote"])


def test_without_vendored_assets_pages_are_left_as_gx_wrote_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    site = tmp_path / "data_docs"
    site.mkdir()
    page = f'<script src="{offline_docs.ASSETS[0].url}"></script>'
    (site / "index.html").write_text(page)
    monkeypatch.setattr(offline_docs, "VENDOR", tmp_path / "nothing")

    with caplog.at_level(logging.WARNING, logger=offline_docs.__name__):
        assert offline_docs.localize_site(site) == 0

    assert (site / "index.html").read_text() == page and not (site / "static").exists()
    assert "run `make setup`" in caplog.text and "bootstrap-table@1.19.1 (not installed)" in caplog.text


def _local_loads(html: str) -> list[str]:
    """The scripts, stylesheets and images a page loads from its own folder tree."""

    class Loads(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.urls: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            url = values.get("src") if tag in ("script", "img") else (
                values.get("href") if tag == "link" and values.get("rel") == "stylesheet" else None)
            if url:
                self.urls.append(url)

    parser = Loads()
    parser.feed(html)
    return parser.urls
