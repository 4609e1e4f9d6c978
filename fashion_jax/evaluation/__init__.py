"""Evaluation: a trained run loaded back (trained), its evaluation passes (evaluators),
scoring any labelled data into reports (scoring), metrics, plots and event files."""
