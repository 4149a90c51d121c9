"""The paper's experiments: training recipes, reports."""
