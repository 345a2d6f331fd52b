"""granger_prune: neural-network pruning as Granger-causal feature selection."""

__version__ = "0.1.0"
