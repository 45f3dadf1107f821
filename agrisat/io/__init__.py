"""Every side effect lives here: readers of plots, tables and tiles, and the run store."""
