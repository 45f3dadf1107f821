"""One router per resource: limits, plots, runs, exports, audit, health."""
