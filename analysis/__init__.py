"""Results schema (Parquet), aggregation and reports. Never imports ray."""
