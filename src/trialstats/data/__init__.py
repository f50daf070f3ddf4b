"""The trial's data: strict readers of the input tables (CSV, Excel, Parquet; wide or long),
validation against the configuration into analysis-ready tables with their fingerprint,
outcome types and period designs, and the synthetic trials used for the default run and tests."""

__all__ = [
    "columns",
    "fingerprint",
    "io",
    "outcome_types",
    "periods",
    "synthetic",
    "synthetic_periods",
    "validate",
]
