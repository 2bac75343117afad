"""How the base learners train, as a resource so that ``bot4 run --profile`` and the UI's
launchpad set it per run: the training profile (``quick`` or ``full``) and the seed."""

from __future__ import annotations

import os

import dagster as dg

from ..ml.learners import Profile, profile

ENV_PROFILE = "BOT4_TRAINING_PROFILE"


class TrainingResource(dg.ConfigurableResource):
    """``profile``: quick (the default, minutes on two cores) or full; README, "Models"."""

    profile: str = "quick"
    seed: int = 0

    @classmethod
    def from_env(cls) -> TrainingResource:
        name = os.environ.get(ENV_PROFILE, "quick")
        try:
            profile(name)
        except ValueError as exc:
            raise ValueError(f"{ENV_PROFILE}: {exc}") from None
        return cls(profile=name)

    def settings(self) -> Profile:
        return profile(self.profile)

    def run_config(self) -> dict:
        return {"resources": {"training": {"config": {"profile": self.profile,
                                                      "seed": self.seed}}}}


__all__ = ["ENV_PROFILE", "TrainingResource"]
