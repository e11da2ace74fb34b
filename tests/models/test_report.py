"""The monitoring report: a self-contained page whose plots and alerts a person sees in Chromium."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from models import report
from models.monitoring import SCORE_SHARE
from models.report import ReportHeader, ScoreReference
from tests.render import IMAGES_DRAWN, render

START = date(2026, 3, 1)
DRIFT_FROM = date(2026, 3, 8)
FEATURES = [f"feature_{i}" for i in range(8)]


def monitoring_rows(days: int = 14, realized_days: int = 7) -> pd.DataFrame:
    """Rows as `monitor` writes them: feature_3 drifts from DRIFT_FROM; labels of the first dates only."""
    rng = np.random.default_rng(7)
    rows = []

    def add(day: date, kind: str, metric: str, feature: str | None, value: float, threshold: float | None = None,
            alert: bool = False, coverage: float | None = None) -> None:
        rows.append(dict(ds=day, model_version=1, kind=kind, metric=metric, feature=feature, value=value,
                         threshold=threshold, alert=alert, rows=1000, label_coverage=coverage))

    for offset in range(days):
        day = START + timedelta(days=offset)
        for name in FEATURES:
            psi = 0.6 if name == "feature_3" and day >= DRIFT_FROM else float(rng.uniform(0, 0.03))
            add(day, "drift", "psi", name, psi, 0.25, psi > 0.25)
            add(day, "quality", "null_share", name, float(rng.uniform(0, 0.01)))
            add(day, "quality", "out_of_range_share", name, float(rng.uniform(0, 0.02)))
        add(day, "quality", "rows", None, 1000 + offset)
        add(day, "estimated", "auc", None, 0.80 + float(rng.normal(0, 0.005)))
        if offset < realized_days:
            add(day, "realized", "auc", None, 0.80 + float(rng.normal(0, 0.01)), coverage=1.0)
        for index, share in enumerate([0.3, 0.3, 0.2, 0.1, 0.1, 0.0]):
            add(day, "drift", SCORE_SHARE, str(index), share)
    return pd.DataFrame(rows)


HEADER = ReportHeader("churn", "churn_lgbm", 1, START + timedelta(days=13),
                      {"scores": 14, "features": 20}, "run-1")
REFERENCE = ScoreReference([0.05, 0.1, 0.2, 0.4], [0.25, 0.25, 0.25, 0.15, 0.1, 0.0])


def test_the_page_is_self_contained_small_and_the_same_for_the_same_rows() -> None:
    page = report.render(monitoring_rows(), HEADER, REFERENCE)
    assert len(page.encode()) < 2 * 2**20
    # Nothing is loaded from anywhere: every image is inline, no script, no link.
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)
    assert "<script" not in page
    assert page == report.render(monitoring_rows(), HEADER, REFERENCE)
    # Aggregates only: no row-level identifiers in the page.
    assert "customer_id" not in page


def test_most_drifting_features_put_the_drifted_one_first() -> None:
    assert report.most_drifting(monitoring_rows())[0] == "feature_3"


def test_a_person_sees_every_plot_and_the_drift_alert_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text(report.render(monitoring_rows(), HEADER, REFERENCE), encoding="utf-8")

    shown = render(page, tmp_path / "report.png", probe=IMAGES_DRAWN, height=2400)

    assert not shown.image().blank()
    images = dict(shown.probe)
    assert images == {f"plot-{key}": True for key in ("performance", "score-distribution", "psi", "quality")}
    cells = shown.cells()
    # The alert table lists the drifted feature on each date from the drift on, and nothing else.
    alerted = [cells[i - 4] for i, cell in enumerate(cells) if cell == "feature_3"]
    assert sorted(alerted) == [str(DRIFT_FROM + timedelta(days=d)) for d in range(7)]
    assert not any(cell.startswith("feature_") and cell != "feature_3" for cell in cells)


def test_an_empty_history_renders_a_page_that_says_so() -> None:
    empty = monitoring_rows().iloc[0:0]
    page = report.render(empty, ReportHeader("churn", "churn_lgbm", None, START), None)
    assert "No alerts." in page and page.count("Nothing to plot yet.") == 4


def test_a_single_date_gets_day_ticks_without_warnings(caplog) -> None:  # noqa: ANN001
    """matplotlib widens a single date's axis to years: a tick a day there was 1,607 ticks per
    plot, a `Locator attempting to generate` warning each, and seconds of drawing."""
    one_day = monitoring_rows(days=1, realized_days=1)
    with caplog.at_level("WARNING"):
        page = report.render(one_day, HEADER, REFERENCE)
    assert not [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert page.count('src="data:image/png;base64,') == 4
