"""Analysis of agent traces: the paper's characterization metrics. Not part of the product."""
