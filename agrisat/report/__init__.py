"""Analyst views of a run folder: per-plot charts (PNG), tables, and a self-contained HTML report."""
