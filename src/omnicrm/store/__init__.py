"""The three stores: facts (Parquet), derived (DuckDB/Spark through Ibis), state (SQLAlchemy)."""
