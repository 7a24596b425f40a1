"""Agent workloads: recorded and synthetic traces, the recorder, and the replayer that plays traces back in
cgroups at a chosen speed and memory scale. Not part of the product."""
