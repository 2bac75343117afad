"""What a user looks at next to a result: summary statistics and plots (PNG bytes), and the
markdown that embeds a PNG in Dagster's metadata.

Plots are kept small (a few tens of KB) because every materialization stores them: 72 dpi,
7-inch-wide figures, and long series thinned to at most ``MAX_POINTS`` points by a min/max
envelope, so that a single-bar spike still shows.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd

DPI = 72
WIDTH = 7.0  # inches
MAX_POINTS = 2000  # per plotted line


def _pyplot():
    """matplotlib's pyplot on the Agg backend: plots are rendered to PNG, never shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    fig.clf()
    _pyplot().close(fig)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that shows PNG bytes inline, as a base64 data URI (``MetadataValue.md``)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def _times(ts) -> np.ndarray:
    """Time stamps as naive UTC datetime64 (what matplotlib plots fast)."""
    index = pd.DatetimeIndex(pd.to_datetime(ts))
    return (index.tz_convert(None) if index.tz is not None else index).to_numpy()


def _buckets(n: int, max_points: int) -> np.ndarray:
    """Edges of max_points // 2 contiguous buckets of (almost) equal size over n points."""
    return np.linspace(0, n, max_points // 2 + 1).astype(np.int64)


def envelope(x, y, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` of (x, y), in order: the minimum and the maximum of each of
    max_points // 2 contiguous buckets, so every spike survives thinning; a bucket with no
    values stays a gap."""
    x, y = np.asarray(x), np.asarray(y, dtype=np.float64)
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if len(y) <= max_points:
        return x, y
    edges = _buckets(len(y), max_points)
    bucket = np.repeat(np.arange(len(edges) - 1), np.diff(edges))
    nan = np.isnan(y)
    lowest = np.lexsort((np.where(nan, np.inf, y), bucket))[edges[:-1]]
    highest = np.lexsort((np.where(nan, -np.inf, y), bucket))[edges[1:] - 1]
    keep = np.union1d(lowest, highest)
    return x[keep], y[keep]


def _worst(x: np.ndarray, codes: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket start times and the highest code in each bucket (regimes: the worst one)."""
    if len(codes) <= max_points:
        return x, codes
    edges = _buckets(len(codes), max_points)
    return x[edges[:-1]], np.maximum.reduceat(codes, edges[:-1])


def summarize(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """count / mean / std / min / median / max per feature, NaNs left out."""
    stats = frame[columns].describe(percentiles=[0.5]).T.rename_axis("feature")
    return stats.rename(columns={"50%": "median"})[["count", "mean", "std", "min", "median", "max"]]


def plot_series(ts: pd.Series, panels: list[tuple[str, pd.Series]], title: str) -> bytes:
    """Stacked line panels sharing the time axis, as PNG bytes."""
    plt = _pyplot()

    x = _times(ts)
    fig, axes = plt.subplots(len(panels), 1, figsize=(WIDTH, 1.7 * len(panels)), sharex=True,
                             squeeze=False)
    for ax, (label, values) in zip(axes[:, 0], panels, strict=True):
        ax.plot(*envelope(x, np.asarray(values, dtype=np.float64)), linewidth=0.6)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title, fontsize=10)
    fig.autofmt_xdate()
    fig.tight_layout()
    return _png(fig)


MICROSTRUCTURE_PANELS = (("vpin", "vpin_bvc", "VPIN"), ("kyle_lambda", "kyle_lambda_bar", "Kyle λ"))


def microstructure_columns(frame: pd.DataFrame) -> tuple[str, ...]:
    """The VPIN and Kyle lambda columns to show: from trades (``vpin``, ``kyle_lambda``) where
    the frame has values, else their bar versions (``vpin_bvc``, ``kyle_lambda_bar``)."""
    return tuple(exact if frame[exact].notna().any() else fallback
                 for exact, fallback, _ in MICROSTRUCTURE_PANELS)


def plot_microstructure(ts: pd.Series, frame: pd.DataFrame, symbol: str) -> bytes:
    """VPIN and Kyle's lambda over time, as ``microstructure_columns`` chooses them."""
    panels = [(f"{label}\n({name})", frame[name])
              for name, (_, _, label) in zip(microstructure_columns(frame), MICROSTRUCTURE_PANELS,
                                             strict=True)]
    return plot_series(ts, panels, f"{symbol}: VPIN and Kyle lambda")


REGIME_COLOURS = {"low": "#d9f0d3", "normal": "#ffffff", "high": "#fee0b6", "crisis": "#f4a582"}


def plot_volatility(ts: pd.Series, returns: pd.Series, sigma: pd.Series, regimes: pd.Series,
                    title: str) -> bytes:
    """Returns over time, and the conditional volatility with each bar's regime shaded."""
    plt = _pyplot()

    x = _times(ts)
    sigma = np.asarray(sigma, dtype=np.float64)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(WIDTH, 3.8), sharex=True)
    top.plot(*envelope(x, returns), linewidth=0.5, color="#555555")
    top.set_ylabel("return", fontsize=8)
    top.set_title(title, fontsize=10)
    bottom.plot(*envelope(x, sigma), linewidth=0.6, color="#2166ac")
    bottom.set_ylabel("conditional volatility", fontsize=8)
    top_value = float(np.nanmax(sigma)) if np.isfinite(sigma).any() else 1.0
    names = list(REGIME_COLOURS)
    codes = pd.Categorical(pd.Series(regimes).astype("string"), categories=names).codes
    shade_x, worst = _worst(x, np.asarray(codes, dtype=np.int64), MAX_POINTS)
    for code, (name, colour) in enumerate(REGIME_COLOURS.items()):
        if name == "normal":
            continue
        bottom.fill_between(shade_x, 0, top_value, where=worst == code, color=colour,
                            step="post", label=name, linewidth=0)
    bottom.legend(loc="upper left", fontsize=7, ncol=3)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return _png(fig)


# unused, train, test, purged, embargoed
ROLE_COLOURS = ("#ffffff", "#4393c3", "#f4a582", "#d6604d", "#8073ac")


def plot_folds(schemes: list[tuple[str, np.ndarray]], title: str, width: int = 600) -> bytes:
    """One panel per CV scheme: splits down, samples across (every k-th sample when there are
    more than ``width``), coloured by role."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    heights = [max(2, m.shape[0]) for _, m in schemes]
    fig, axes = plt.subplots(len(schemes), 1, figsize=(WIDTH, 1.2 + 0.15 * sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    cmap = ListedColormap(ROLE_COLOURS)
    for ax, (name, matrix) in zip(axes[:, 0], schemes, strict=True):
        step = max(1, int(np.ceil(matrix.shape[1] / width)))
        ax.imshow(matrix[:, ::step] + 1, aspect="auto", cmap=cmap, vmin=0, vmax=4,
                  interpolation="nearest")
        ax.set_ylabel(name, fontsize=8)
        ax.set_yticks([])
        ax.set_xticks([])
    labels = ("train", "test", "purged", "embargoed")
    fig.legend(handles=[Patch(color=c, label=lab)
                        for c, lab in zip(ROLE_COLOURS[1:], labels, strict=True)],
               loc="lower center", ncol=4, fontsize=8)
    axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _png(fig)


def plot_learning_curves(curves: dict[str, list[dict]], title: str) -> bytes:
    """Training and validation loss per epoch, one panel per scheme, one colour per split."""
    plt = _pyplot()
    schemes = sorted({name.split(" ")[0] for name in curves})
    fig, axes = plt.subplots(1, len(schemes), figsize=(WIDTH, 2.8), squeeze=False, sharey=True)
    for ax, scheme in zip(axes[0], schemes, strict=True):
        for i, (name, history) in enumerate(sorted(c for c in curves.items()
                                                   if c[0].split(" ")[0] == scheme)):
            epochs = [h["epoch"] for h in history]
            colour = f"C{i % 10}"
            ax.plot(epochs, [h["train_loss"] for h in history], color=colour, lw=1,
                    label=name.split(" ", 1)[1])
            ax.plot(epochs, [h["val_loss"] for h in history], color=colour, lw=1, ls="--")
        ax.set_title(f"{scheme} (solid train, dashed validation)", fontsize=8)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    axes[0, 0].set_ylabel("weighted log-loss", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def plot_attention(weights: np.ndarray, title: str) -> bytes:
    """Attention of one window: one heatmap per head, queries down, keys across (causal)."""
    plt = _pyplot()
    heads = weights.shape[0]
    fig, axes = plt.subplots(1, heads, figsize=(WIDTH, WIDTH / heads + 0.8), squeeze=False)
    for h, ax in enumerate(axes[0]):
        ax.imshow(weights[h], cmap="viridis", vmin=0, interpolation="nearest")
        ax.set_title(f"head {h + 1}", fontsize=8)
        ax.set_xlabel("key (bar)", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("query (bar)", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def plot_scores(metrics: pd.DataFrame, title: str) -> bytes:
    """AUC and log-loss per model with ±2 standard errors; the base rate as a reference line."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 0.9 + 0.28 * len(metrics)), sharey=True)
    y = np.arange(len(metrics))
    for ax, (column, label) in zip(axes, (("auc", "AUC"), ("log_loss", "log-loss")), strict=True):
        ax.errorbar(metrics[column], y, xerr=2 * metrics[f"{column}_se"], fmt="o", ms=3,
                    capsize=2)
        reference = metrics.loc[metrics["model"] == "base_rate", column]
        if len(reference):
            ax.axvline(float(reference.iloc[0]), color="grey", lw=0.8, ls="--")
        ax.set_xlabel(f"{label} (±2 SE)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_yticks(y, metrics["model"], fontsize=7)
    axes[0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def plot_reliability(curves: dict[str, dict], title: str) -> bytes:
    """Reliability diagrams, one panel per scope (all rows, then each regime): the observed
    frequency against the mean forecast per bin, one line per method, the diagonal as perfect
    calibration. ``curves`` maps scope → method → a table with ``mean_predicted``,
    ``mean_observed`` and ``count`` per bin (empty bins are skipped)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(WIDTH, WIDTH / len(curves) + 1.1),
                             squeeze=False, sharey=True)
    for ax, (scope, methods) in zip(axes[0], curves.items(), strict=True):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        for i, (method, points) in enumerate(methods.items()):
            used = np.asarray(points.count) > 0
            ax.plot(np.asarray(points.mean_predicted)[used],
                    np.asarray(points.mean_observed)[used], marker="o", ms=2, lw=1,
                    color=f"C{i}", label=method)
        ax.set_title(f"{scope} (n={int(np.sum(next(iter(methods.values())).count)):,})",
                     fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean forecast", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0, 0].set_ylabel("observed frequency", fontsize=7)
    axes[0, 0].legend(fontsize=6, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)
