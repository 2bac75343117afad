"""The base learners and the two training profiles.

Four families, so the ensemble has something to diversify: an attention LSTM over the window of
recent bars, gradient-boosted trees, a standardised logistic regression and extremely randomised
trees, the last three on the inputs at t0. ``quick`` keeps ``make run`` within minutes on two
cores; ``full`` is what a real training run uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from sklearn.base import BaseEstimator
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

LSTM = "attention_lstm"
LEARNERS = (LSTM, "hist_gradient_boosting", "logistic", "extra_trees")


@dataclass(frozen=True)
class Profile:
    """How hard each learner trains."""

    name: str
    window: int  # LSTM input: bars up to t0
    hidden: int
    epochs: int
    patience: int
    boosting_iterations: int
    trees: int

    def describe(self) -> str:
        return (f"{self.name}: LSTM window {self.window}, hidden {self.hidden}, up to "
                f"{self.epochs} epochs (patience {self.patience}); {self.boosting_iterations} "
                f"boosting iterations; {self.trees} extra trees")


PROFILES = {
    "quick": Profile("quick", window=16, hidden=16, epochs=6, patience=2,
                     boosting_iterations=50, trees=100),
    "full": Profile("full", window=64, hidden=64, epochs=60, patience=8,
                    boosting_iterations=400, trees=500),
}


def profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown training profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def make_learner(name: str, settings: Profile, seed: int = 0, progress=None) -> BaseEstimator:
    """A fresh, unfitted learner. ``progress(epoch, train_loss, val_loss)`` reports LSTM epochs."""
    if name == LSTM:
        from .lstm import AttentionLSTM  # torch loads only where the LSTM trains

        return AttentionLSTM(hidden=settings.hidden, epochs=settings.epochs,
                             patience=settings.patience, seed=seed, progress=progress)
    if name == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=settings.boosting_iterations,
                                              learning_rate=0.05, max_leaf_nodes=7,
                                              min_samples_leaf=50, l2_regularization=1.0,
                                              early_stopping=False, random_state=seed)
    if name == "logistic":
        return Pipeline([("scale", StandardScaler()),
                         ("model", LogisticRegression(C=0.1, max_iter=1000))])
    if name == "extra_trees":
        return ExtraTreesClassifier(n_estimators=settings.trees, min_samples_leaf=20,
                                    max_features="sqrt", n_jobs=1, random_state=seed)
    raise ValueError(f"unknown learner {name!r}; choose one of {', '.join(LEARNERS)}")


def fit_weighted(model: BaseEstimator, x, y, weight, **extra) -> BaseEstimator:
    """``fit`` with sample weights (routed to the final step of a pipeline), on one thread: the
    folds are the parallel unit (on two cores one thread per fit is the faster layout)."""
    with threadpool_limits(1):
        if isinstance(model, Pipeline):
            return model.fit(x, y, **{f"{model.steps[-1][0]}__sample_weight": weight})
        return model.fit(x, y, sample_weight=weight, **extra)
