"""trialstats: analysis and planning of cluster-randomised trials."""

__version__ = "0.1.0"
