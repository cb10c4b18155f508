"""Real data sets the project trains and evaluates on (loaders only; no data is shipped here)."""
