"""What a user looks at next to a feature frame: summary statistics and a plot (PNG bytes)."""

from __future__ import annotations

import io

import pandas as pd


def summarize(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """count / mean / std / min / median / max per feature, NaNs left out."""
    stats = frame[columns].describe(percentiles=[0.5]).T
    return stats.rename(columns={"50%": "median"})[["count", "mean", "std", "min", "median", "max"]]


def plot_series(ts: pd.Series, panels: list[tuple[str, pd.Series]], title: str) -> bytes:
    """Stacked line panels sharing the time axis, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.2 * len(panels)), sharex=True,
                             squeeze=False)
    for ax, (label, values) in zip(axes[:, 0], panels):
        ax.plot(pd.to_datetime(ts).to_numpy(), values.to_numpy(), linewidth=0.7)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title, fontsize=10)
    fig.autofmt_xdate()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()
