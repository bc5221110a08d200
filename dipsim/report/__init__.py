"""Plots and the self-contained HTML report of a scenario run (Chinese labels by default, English on request)."""
