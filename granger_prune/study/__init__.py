"""Studies: a TOML configuration, the runner that writes a run folder, its tables and
figures, and the ``granger-prune`` command line (torch)."""

from .config import StudyConfig, bundled_studies, resolve_study
from .intervals import paired_comparison, t_interval
from .runner import run_study

__all__ = ["StudyConfig", "bundled_studies", "paired_comparison", "resolve_study", "run_study", "t_interval"]
