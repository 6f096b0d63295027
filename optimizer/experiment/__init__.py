"""The experiment: what a user asks for (model) and how a file becomes one (loading)."""

from optimizer.experiment.loading import (Submitted, load_experiment, load_experiment_text, load_run_experiment,
                                          load_submitted, parse_experiment, resolve_scene_path,
                                          with_overrides)
from optimizer.experiment.model import Experiment

__all__ = ["Experiment", "Submitted", "load_experiment", "load_experiment_text", "load_run_experiment", "load_submitted",
           "parse_experiment", "resolve_scene_path", "with_overrides"]
