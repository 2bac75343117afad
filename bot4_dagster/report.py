"""What a user looks at next to a result: summary statistics and plots (PNG bytes)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def _pyplot():
    """matplotlib's pyplot on the Agg backend: plots are rendered to PNG, never shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    fig.clf()
    _pyplot().close(fig)
    return buffer.getvalue()


def summarize(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """count / mean / std / min / median / max per feature, NaNs left out."""
    stats = frame[columns].describe(percentiles=[0.5]).T
    return stats.rename(columns={"50%": "median"})[["count", "mean", "std", "min", "median", "max"]]


def plot_series(ts: pd.Series, panels: list[tuple[str, pd.Series]], title: str) -> bytes:
    """Stacked line panels sharing the time axis, as PNG bytes."""
    plt = _pyplot()

    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.2 * len(panels)), sharex=True,
                             squeeze=False)
    for ax, (label, values) in zip(axes[:, 0], panels):
        ax.plot(pd.to_datetime(ts).to_numpy(), values.to_numpy(), linewidth=0.7)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title, fontsize=10)
    fig.autofmt_xdate()
    fig.tight_layout()
    return _png(fig)


REGIME_COLOURS = {"low": "#d9f0d3", "normal": "#ffffff", "high": "#fee0b6", "crisis": "#f4a582"}


def plot_volatility(ts: pd.Series, returns: pd.Series, sigma: pd.Series, regimes: pd.Series,
                    title: str) -> bytes:
    """Returns over time, and the conditional volatility with each bar's regime shaded."""
    plt = _pyplot()

    x = pd.to_datetime(ts).to_numpy()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    top.plot(x, returns.to_numpy(), linewidth=0.5, color="#555555")
    top.set_ylabel("return", fontsize=8)
    top.set_title(title, fontsize=10)
    bottom.plot(x, sigma.to_numpy(), linewidth=0.7, color="#2166ac")
    bottom.set_ylabel("conditional volatility", fontsize=8)
    top_value = float(np.nanmax(sigma.to_numpy())) if len(sigma) else 1.0
    for name, colour in REGIME_COLOURS.items():
        if name == "normal":
            continue
        mask = (regimes.astype(str) == name).to_numpy()
        bottom.fill_between(x, 0, top_value, where=mask, color=colour, step="mid",
                            label=name, linewidth=0)
    bottom.legend(loc="upper left", fontsize=7, ncol=3)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return _png(fig)


ROLE_COLOURS = ("#ffffff", "#4393c3", "#f4a582", "#d6604d", "#8073ac")  # unused, train, test, purged, embargoed


def plot_folds(schemes: list[tuple[str, np.ndarray]], title: str, width: int = 600) -> bytes:
    """One panel per CV scheme: splits down, samples across (every k-th sample when there are
    more than ``width``), coloured by role."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    heights = [max(2, m.shape[0]) for _, m in schemes]
    fig, axes = plt.subplots(len(schemes), 1, figsize=(9, 1.2 + 0.18 * sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    cmap = ListedColormap(ROLE_COLOURS)
    for ax, (name, matrix) in zip(axes[:, 0], schemes):
        step = max(1, int(np.ceil(matrix.shape[1] / width)))
        ax.imshow(matrix[:, ::step] + 1, aspect="auto", cmap=cmap, vmin=0, vmax=4,
                  interpolation="nearest")
        ax.set_ylabel(name, fontsize=8)
        ax.set_yticks([])
        ax.set_xticks([])
    labels = ("train", "test", "purged", "embargoed")
    fig.legend(handles=[Patch(color=c, label=lab) for c, lab in zip(ROLE_COLOURS[1:], labels)],
               loc="lower center", ncol=4, fontsize=8)
    axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _png(fig)
