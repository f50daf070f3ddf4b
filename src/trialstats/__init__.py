"""trialstats: analysis and planning of cluster-randomised trials.

The library behind the ``trialstats`` command: reading and validating a trial's data
(:mod:`trialstats.data`), the analyses (:mod:`trialstats.analysis`) whose tidy results follow
the output contract (:mod:`trialstats.contract`), power and sample size for the next trial
(:mod:`trialstats.power`) on simulated trials (:mod:`trialstats.simulation`), and the report
(:mod:`trialstats.report`); :mod:`trialstats.cli` and :mod:`trialstats.commands` are the
command line. Submodules are imported by name.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
