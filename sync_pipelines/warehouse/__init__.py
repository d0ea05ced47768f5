"""The CRM half: sources' tables loaded through dlt into the warehouse (DuckDB or PostgreSQL)."""
