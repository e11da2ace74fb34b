"""The monitoring report: one self-contained HTML page per use case, drawn from the `monitoring` table.

`render` turns the monitoring rows of a use case (aggregates only: the table holds no row-level
data, so neither does the page) into a page a person opens from the lake:

- a header: the use case, the model and its version, the last monitored date and the versions
  of the tables its numbers were read from;
- the alerts, newest first;
- estimated against realized performance over time, with the labels' coverage;
- the score distribution of the last date against the model's reference (its holdout);
- the population stability index over time of the features that drift most;
- data-quality trends: rows per date and the worst shares of missing and out-of-range values.

Plots are drawn by matplotlib into PNG images embedded in the page (`data:` URLs), so the page
loads nothing from anywhere: it renders the same from a laptop, an object store's browser or a
cluster without internet. The page's content depends only on its inputs: rendering the same
rows twice gives the same bytes (no clock, fixed image metadata).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # no display, on any machine; set before pyplot is imported

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from models.monitoring import DRIFT, ESTIMATED, QUALITY, REALIZED, SCORE_SHARE  # noqa: E402

TOP_DRIFTING = 5  # features in the PSI plot
MAX_ALERT_ROWS = 200  # the page stays small however long the history
# PNG metadata matplotlib writes by default names its version and the time: keep the bytes a
# function of the data alone.
_PNG_METADATA = {"Software": None}
_WIDTH, _HEIGHT, _DPI = 8.0, 3.2, 96


@dataclass(frozen=True)
class ReportHeader:
    """What the page says it describes."""

    use_case: str
    model_name: str
    model_version: int | None  # the version the last date was scored with; None: nothing monitored yet
    monitored_through: date  # the monitor run's logical date (--date)
    table_versions: dict[str, int] = field(default_factory=dict)  # the Delta versions the numbers were read from
    run_id: str = ""


@dataclass(frozen=True)
class ScoreReference:
    """The model's reference score distribution (`validation.drift.reference_statistics` of `score`)."""

    edges: Sequence[float]  # interior bin edges
    shares: Sequence[float]  # len(edges) + 2: the bins, then missing values


def _png(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight", metadata=_PNG_METADATA)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure() -> tuple[plt.Figure, plt.Axes]:
    figure, axes = plt.subplots(figsize=(_WIDTH, _HEIGHT))
    axes.grid(True, alpha=0.3)
    return figure, axes


def _dates_axis(axes: plt.Axes, dates: Sequence[date]) -> None:
    """Whole days on the x axis, at most about 8 labels, however few or many dates there are."""
    if not len(dates):
        return
    first, last = min(dates), max(dates)
    # Limits of their own: matplotlib widens a single date's axis to years, and a tick a day
    # there is thousands of ticks (slow, and a warning per plot).
    axes.set_xlim(first - timedelta(days=1), last + timedelta(days=1))
    span = (last - first).days + 1
    axes.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, -(-span // 8))))
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    axes.tick_params(axis="x", labelrotation=30)
    for label in axes.get_xticklabels():
        label.set_horizontalalignment("right")


def _metric(rows: pd.DataFrame, kind: str, metric: str) -> pd.DataFrame:
    """Whole-model rows of one kind and metric, by date."""
    picked = rows[(rows["kind"] == kind) & (rows["metric"] == metric) & rows["feature"].isna()]
    return picked.sort_values("ds")


def performance_plot(rows: pd.DataFrame, metric: str = "auc") -> str | None:
    """Estimated and realized `metric` per date and model version, label coverage on a second axis."""
    estimated, realized = _metric(rows, ESTIMATED, metric), _metric(rows, REALIZED, metric)
    if estimated.empty and realized.empty:
        return None
    figure, axes = _figure()
    for version in sorted(set(estimated["model_version"]) | set(realized["model_version"])):
        for frame, style, what in ((estimated, "--o", "estimated"), (realized, "-s", "realized")):
            mine = frame[frame["model_version"] == version]
            if not mine.empty:
                axes.plot(mine["ds"], mine["value"], style, markersize=3, label=f"{what} {metric}, v{version}")
    axes.set_ylabel(metric.upper())
    coverage = realized.dropna(subset=["label_coverage"])
    if not coverage.empty:
        twin = axes.twinx()
        twin.bar(coverage["ds"], coverage["label_coverage"], alpha=0.15, color="grey", label="label coverage")
        twin.set_ylim(0, 1.05)
        twin.set_ylabel("label coverage")
    axes.legend(loc="best", fontsize=8)
    axes.set_title(f"Estimated vs realized {metric.upper()}")
    _dates_axis(axes, [*estimated["ds"], *realized["ds"]])
    return _png(figure)


def score_distribution_plot(rows: pd.DataFrame, reference: ScoreReference | None) -> str | None:
    """The last date's score shares per reference bin beside the reference's."""
    shares = rows[(rows["kind"] == DRIFT) & (rows["metric"] == SCORE_SHARE)]
    if shares.empty or reference is None:
        return None
    last = shares[shares["ds"] == shares["ds"].max()]
    last = last[last["model_version"] == last["model_version"].max()]
    labels = _bin_labels(reference.edges)
    now = [float(last.loc[last["feature"] == str(i), "value"].sum()) for i in range(len(labels))]
    figure, axes = _figure()
    positions = range(len(labels))
    axes.bar([p - 0.2 for p in positions], list(reference.shares[: len(labels)]), width=0.4, label="reference (holdout)")
    axes.bar([p + 0.2 for p in positions], now, width=0.4, label=f"{last['ds'].iloc[0]}")
    axes.set_xticks(list(positions), labels, rotation=30, ha="right", fontsize=7)
    axes.set_ylabel("share of rows")
    axes.set_title("Score distribution: last date vs reference")
    axes.legend(fontsize=8)
    return _png(figure)


def _bin_labels(edges: Sequence[float]) -> list[str]:
    bounds = ["-inf", *(f"{edge:.3g}" for edge in edges), "inf"]
    return [f"[{low}, {high})" for low, high in zip(bounds, bounds[1:])]


def most_drifting(rows: pd.DataFrame, top: int = TOP_DRIFTING) -> list[str]:
    """The features with the highest PSI on any date, highest first (ties by name)."""
    psi = rows[(rows["kind"] == DRIFT) & (rows["metric"] == "psi") & rows["feature"].notna()]
    if psi.empty:
        return []
    worst = psi.groupby("feature")["value"].max().reset_index().sort_values(["value", "feature"], ascending=[False, True])
    return list(worst["feature"].head(top))


def psi_plot(rows: pd.DataFrame, features: list[str]) -> str | None:
    """PSI per date of `features`, with the alert threshold."""
    psi = rows[(rows["kind"] == DRIFT) & (rows["metric"] == "psi") & rows["feature"].isin(features)]
    if psi.empty:
        return None
    figure, axes = _figure()
    for name in features:
        mine = psi[psi["feature"] == name].groupby("ds")["value"].max().sort_index()
        axes.plot(mine.index, mine.values, "-o", markersize=3, label=name)
    thresholds = psi["threshold"].dropna()
    if not thresholds.empty:
        axes.axhline(float(thresholds.iloc[0]), color="red", linestyle=":", label="alert threshold")
    axes.set_ylabel("PSI")
    axes.set_title("Population stability index of the most drifting features")
    axes.legend(fontsize=7, loc="best")
    _dates_axis(axes, list(psi["ds"]))
    return _png(figure)


def quality_plot(rows: pd.DataFrame) -> str | None:
    """Scored rows per date, and the worst feature's missing and out-of-range shares."""
    counts = _metric(rows, QUALITY, "rows")
    if counts.empty:
        return None
    figure, axes = _figure()
    per_day = counts.groupby("ds")["value"].sum().sort_index()
    axes.bar(per_day.index, per_day.values, color="tab:blue", alpha=0.4, label="scored rows")
    axes.set_ylabel("rows")
    twin = axes.twinx()
    for metric, colour in (("null_share", "tab:orange"), ("out_of_range_share", "tab:red")):
        worst = rows[(rows["kind"] == QUALITY) & (rows["metric"] == metric)].groupby("ds")["value"].max().sort_index()
        if not worst.empty:
            twin.plot(worst.index, worst.values, "-o", markersize=3, color=colour, label=f"worst {metric}")
    twin.set_ylabel("share")
    twin.set_ylim(bottom=0)
    lines, labels = [], []
    for each in (axes, twin):
        got = each.get_legend_handles_labels()
        lines += got[0]
        labels += got[1]
    axes.legend(lines, labels, fontsize=8, loc="best")
    axes.set_title("Data quality")
    _dates_axis(axes, list(per_day.index))
    return _png(figure)


def _alerts_table(rows: pd.DataFrame) -> str:
    alerts = rows[rows["alert"]].sort_values(["ds", "kind", "metric", "feature"], ascending=[False, True, True, True],
                                             na_position="first")
    if alerts.empty:
        return '<p class="ok" id="no-alerts">No alerts.</p>'
    cells = []
    for row in alerts.head(MAX_ALERT_ROWS).itertuples():
        values = [row.ds, f"v{row.model_version}", row.kind, row.metric, row.feature or "",
                  _number(row.value), _number(row.threshold)]
        cells.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in values) + "</tr>")
    more = len(alerts) - MAX_ALERT_ROWS
    note = f"<p>{more} older alerts not shown.</p>" if more > 0 else ""
    # A long history of alerts scrolls in its own box: the plots stay in view below it.
    return ('<div class="scroll"><table id="alerts"><thead><tr><th>date</th><th>model</th><th>kind</th><th>metric</th>'
            "<th>feature</th><th>value</th><th>threshold</th></tr></thead><tbody>"
            + "".join(cells) + "</tbody></table></div>" + note)


def _number(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.4g}"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { padding: 0.2em 0.7em; border: 1px solid #ccc; white-space: nowrap; }
.scroll { max-height: 22em; overflow-y: auto; display: inline-block; }
#alerts tbody tr { background: #fde8e8; } .ok { color: #2a7a2a; } .none { color: #777; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; } dt { font-weight: 600; }
img { max-width: 100%; }
"""


def render(rows: pd.DataFrame, header: ReportHeader, reference: ScoreReference | None = None) -> str:
    """The report page for `rows`, the monitoring table's rows of one use case (any dates, versions).

    Args:
        rows: columns `ds`, `model_version`, `kind`, `metric`, `feature`, `value`, `threshold`,
            `alert`, `rows`, `label_coverage` (the `monitoring` table's, as pandas).
        header: what the page describes.
        reference: the score reference of the header's model version, when it has one.

    Returns:
        The HTML text of one self-contained page.
    """
    rows = rows.copy()
    rows["ds"] = pd.to_datetime(rows["ds"]).dt.date
    rows = rows.sort_values(["ds", "model_version", "kind", "metric", "feature"], na_position="first")
    versions = "".join(f"<dt>{html.escape(name)}</dt><dd>version {version}</dd>"
                       for name, version in sorted(header.table_versions.items()))
    model = "none monitored yet" if header.model_version is None else f"{header.model_name} version {header.model_version}"
    dates = sorted(set(rows["ds"]))
    span = f"{dates[0]} to {dates[-1]} ({len(dates)} dates)" if dates else "none"
    plots = [
        ("performance", "Estimated vs realized performance", performance_plot(rows)),
        ("score-distribution", "Score distribution", score_distribution_plot(rows, reference)),
        ("psi", "Drift", psi_plot(rows, most_drifting(rows))),
        ("quality", "Data quality", quality_plot(rows)),
    ]
    sections = []
    for key, title, image in plots:
        body = (f'<img id="plot-{key}" alt="{html.escape(title)}" src="data:image/png;base64,{image}">' if image
                else f'<p class="none" id="plot-{key}-missing">Nothing to plot yet.</p>')
        sections.append(f"<h2>{html.escape(title)}</h2>{body}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Nightjar monitoring: {html.escape(header.use_case)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Nightjar monitoring: {html.escape(header.use_case)}</h1>"
        f"<dl id=\"header\"><dt>model</dt><dd>{html.escape(model)}</dd>"
        f"<dt>monitored through</dt><dd>{header.monitored_through}</dd><dt>scored dates</dt><dd>{span}</dd>"
        f"{versions}<dt>run</dt><dd>{html.escape(header.run_id)}</dd></dl>"
        f"<h2>Alerts</h2>{_alerts_table(rows)}"
        + "".join(sections)
        + "</body></html>\n"
    )
