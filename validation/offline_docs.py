"""Data Docs that render without internet: local copies of the front-end assets GX's pages load.

Great Expectations 1.24's Data Docs templates load Bootstrap, jQuery, popper.js, bootstrap-table,
bootstrap-datepicker, Vega, Font Awesome and a dark theme from public CDNs, and the GX logo from a
remote URL that carries the project's data context id. On a cluster without internet the pages
are unstyled and the index lists no validation results: its tables are built by bootstrap-table
from data in the page's scripts, and that script never loads. So `make setup` fetches the same
files, at the same versions, from the npm registry (`deps/vendor/package-lock.json` into
`.vendor/`), and after each Data Docs build `localize_site` copies them into the site
(`static/vendor/<package>@<version>/...`, so the site stays self-contained when the lake is
copied or its project pushed to an object store) and points every page at them.

GX has no supported hook that does this: its custom views folder (`plugins/custom_data_docs/
views`) is searched after the package's own templates, so it cannot replace the templates that
hold the CDN links, and a custom view class per site section would change every existing
project's configuration and still leave the files to be copied. Rewriting the rendered pages
covers every page whichever section rendered it, and also fixes pages an older build left.
"""

from __future__ import annotations

import filecmp
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from nightjar.config_loader import PROJECT_ROOT

log = logging.getLogger(__name__)

# Where `make setup` installs the npm packages (`npm ci` in .vendor/, git-ignored).
VENDOR = PROJECT_ROOT / ".vendor" / "node_modules"
# Under the site root, beside GX's own static/ folders (images, fonts, styles).
SITE_VENDOR = "static/vendor"


@dataclass(frozen=True)
class Asset:
    """One CDN URL of GX's templates and the npm package file that serves the same bytes."""

    url: str  # as the templates write it
    package: str  # the npm package
    version: str  # the version the URL serves (a range such as vega@5: the newest release in it)
    path: str  # the file within the package
    installed_as: str = ""  # its folder under node_modules when not the package's name (an npm alias)
    companions: str = ""  # a folder of the package the file loads from, by relative URLs (fonts)

    @property
    def folder(self) -> Path:
        """The installed package."""
        return VENDOR / (self.installed_as or self.package)

    @property
    def site_folder(self) -> str:
        """The package's folder in a site, relative to its root."""
        return f"{SITE_VENDOR}/{self.package}@{self.version}"

    @property
    def site_path(self) -> str:
        """The file's path in a site, relative to its root."""
        return f"{self.site_folder}/{self.path}"


# Every resource URL in GX 1.24.1's Data Docs templates (render/view/templates: page.j2,
# index_page.j2, page_minimal.j2, js_script_imports.j2). The CDNs serve the npm packages' files
# byte for byte: the templates' subresource-integrity hashes of bootstrap.min.js and popper.min.js
# match the npm files (tests/validation/test_offline_docs.py). vega@5, vega-lite@5 and
# vega-embed@6 are ranges jsDelivr resolves to the newest release (as of 2026-12-01) and to the
# file named by the package's `jsdelivr` field.
ASSETS: tuple[Asset, ...] = (
    Asset("https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css",
          "bootstrap-table", "1.19.1", "dist/bootstrap-table.min.css"),
    Asset("https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js",
          "bootstrap-table", "1.19.1", "dist/bootstrap-table.min.js"),
    Asset("https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
          "bootstrap-table", "1.19.1", "dist/extensions/filter-control/bootstrap-table-filter-control.min.js"),
    # The templates link the filter-control stylesheet of an older bootstrap-table release.
    Asset("https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
          "bootstrap-table", "1.19.0", "dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
          installed_as="bootstrap-table-1.19.0"),
    Asset("https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css",
          "bootstrap-table", "1.19.0", "dist/extensions/filter-control/bootstrap-table-filter-control.css",
          installed_as="bootstrap-table-1.19.0"),
    Asset("https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css",
          "bootstrap", "4.3.1", "dist/css/bootstrap.min.css"),
    Asset("https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js",
          "bootstrap", "4.3.1", "dist/js/bootstrap.min.js"),
    Asset("https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css",
          "bootstrap-datepicker", "1.9.0", "dist/css/bootstrap-datepicker.min.css"),
    Asset("https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js",
          "bootstrap-datepicker", "1.9.0", "dist/js/bootstrap-datepicker.min.js"),
    Asset("https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css",
          "@forevolve/bootstrap-dark", "1.1.0", "dist/css/bootstrap-prefers-dark.css"),
    Asset("https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css",
          "@fortawesome/fontawesome-free", "6.6.0", "css/all.min.css", companions="webfonts"),
    Asset("https://code.jquery.com/jquery-3.7.1.min.js", "jquery", "3.7.1", "dist/jquery.min.js"),
    Asset("https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js",
          "popper.js", "1.12.9", "dist/umd/popper.min.js"),
    Asset("https://cdn.jsdelivr.net/npm/vega@5", "vega", "5.33.1", "build/vega.min.js"),
    Asset("https://cdn.jsdelivr.net/npm/vega-lite@5", "vega-lite", "5.23.0", "build/vega-lite.min.js"),
    Asset("https://cdn.jsdelivr.net/npm/vega-embed@6", "vega-embed", "6.29.0", "build/vega-embed.min.js"),
)

# The GX logo: the navigation bar's <img> (with `?d=<time>&dataContextId=<id>` appended, which
# tells GX whose docs were opened when) and, in dark mode, a CSS background. GX ships the logo
# in the site's static/images; not the dark variant, for which the regular one stands in.
_LOGO = re.compile(r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/([\w.-]+)(?:\?[^\"')\s]*)?")
_LOGOS = {"logo-long.png": "logo-long.png", "full_logo_dark.png": "logo-long.png"}
_FALLBACK_LOGO = "logo-long.png"
# Attributes a local file:// load must not carry: a subresource-integrity check needs a CORS
# response, which file:// never gives, so the browser would refuse the very file it was given.
_CORS_ATTRIBUTES = re.compile(r"\s+(?:integrity|crossorigin)(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?", re.IGNORECASE)
_TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.IGNORECASE)
_REMOTE = re.compile(r"^(?:https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""", re.IGNORECASE)


def localize(html: str, root: str) -> str:
    """Point a Data Docs page at the site's local copies of its CDN assets and logo.

    Args:
        html: the page as GX rendered it.
        root: the relative path from the page's folder to the site root: "" for the index,
            "../../" for a page two folders down.

    Returns:
        The page with each known CDN URL replaced by `root` + the asset's site path, the
        integrity and crossorigin attributes of those tags dropped, and the GX logo's remote URL
        replaced by the site's copy. Nothing else changes; a page already localized is returned
        as it is.
    """
    for asset in ASSETS:
        for quote in ('"', "'"):
            html = html.replace(f"{quote}{asset.url}{quote}", f"{quote}{root}{asset.site_path}{quote}")
    local = f"{root}{SITE_VENDOR}/"
    html = _TAG.sub(lambda tag: _CORS_ATTRIBUTES.sub("", tag[0]) if local in tag[0] else tag[0], html)
    return _LOGO.sub(lambda found: f"{root}static/images/{_LOGOS.get(found[1], _FALLBACK_LOGO)}", html)


def remote_resources(html: str) -> list[str]:
    """The URLs outside the page's own folder tree that a page loads as it opens.

    Scripts, stylesheets and other `<link>`s, images, frames and media sources, and `url(...)` and
    `@import` in `<style>` blocks and `style` attributes: everything a browser fetches without a
    click. Links a reader may follow (`<a href>`) are not loads. `data:` URLs are local.
    """
    parser = _Resources()
    parser.feed(html)
    parser.close()
    return [url for url in parser.urls if _REMOTE.match(url.strip())]


def remote_css(css: str) -> list[str]:
    """The URLs outside the file's own folder tree that a stylesheet loads (`url(...)`, `@import`)."""
    return [url for found in _CSS_URL.finditer(css) if _REMOTE.match(url := found[1] or found[2])]


class _Resources(HTMLParser):
    _LOADED = {"script": "src", "img": "src", "iframe": "src", "source": "src", "video": "src", "audio": "src",
               "embed": "src", "input": "src", "link": "href", "object": "data"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        attribute = self._LOADED.get(tag)
        if attribute and values.get(attribute):
            self.urls.append(values[attribute] or "")
        for candidate in (values.get("srcset") or "").split(","):
            if candidate.strip():
                self.urls.append(candidate.split()[0])
        if values.get("style"):
            self._css(values["style"] or "")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._css(data)

    def _css(self, text: str) -> None:
        self.urls.extend(remote_css(text))


def missing_assets() -> list[str]:
    """What is missing from `.vendor/` for `localize_site`, one line each (empty: all there)."""
    missing = []
    for asset in ASSETS:
        manifest = asset.folder / "package.json"
        version = json.loads(manifest.read_text())["version"] if manifest.is_file() else None
        if version != asset.version:
            missing.append(f"{asset.package}@{asset.version} ({'not installed' if version is None else f'{version} installed'})")
        elif not (asset.folder / asset.path).is_file():
            missing.append(f"{asset.package}@{asset.version}/{asset.path}")
    return sorted(set(missing))


def localize_site(site: Path | str) -> int:
    """Copy the vendored assets into the Data Docs site at `site` and localize every page of it.

    Files already in the site with the same bytes are left alone, and so are pages already
    localized, so a site pushed to an object store sends only what a build changed. Without the
    vendored assets (no `make setup`), the pages are left as GX wrote them, with a warning: they
    still work with internet.

    Returns:
        The number of pages rewritten.
    """
    site = Path(site)
    missing = missing_assets()
    if missing:
        log.warning("Data Docs at %s need the internet to render: vendored assets missing (run `make setup`): %s",
                    site, ", ".join(missing))
        return 0
    for asset in ASSETS:
        _copy(asset.folder / asset.path, site / asset.site_path)
        if asset.companions:
            for source in sorted((asset.folder / asset.companions).rglob("*")):
                if source.is_file():
                    _copy(source, site / asset.site_folder / source.relative_to(asset.folder))
    rewritten = 0
    for page in sorted(site.rglob("*.html")):
        if page.relative_to(site).parts[0] == "static":
            continue
        html = page.read_text(encoding="utf-8")
        depth = len(page.relative_to(site).parts) - 1
        localized = localize(html, "../" * depth)
        if localized == html:
            continue  # localized by an earlier build: each build writes only its new pages and the index
        _write(page, localized)
        rewritten += 1
        remote = remote_resources(localized)
        if remote:
            # A GX release with a new CDN link: the page still works online; ASSETS needs the file.
            log.warning("Data Docs page %s still loads from outside: %s", page, ", ".join(sorted(set(remote))))
    return rewritten


def _copy(source: Path, target: Path) -> None:
    if target.is_file() and filecmp.cmp(source, target, shallow=False):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    shutil.copyfile(source, partial)
    partial.replace(target)


def _write(page: Path, text: str) -> None:
    # Replace, never truncate in place: a reader (a browser, a push to an object store) sees the
    # page before or after, not half of it.
    partial = page.with_name(f"{page.name}.{os.getpid()}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(page)
