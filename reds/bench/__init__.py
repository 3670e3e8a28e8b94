"""Measuring on boards: the bench (every submodel and switch timed on the device), trace
replay, and reports (plots and a markdown summary)."""
