"""The paper's rows: their configs and order, the pieces log, the results table and curves."""
