"""One module per node of the sweep graph."""
