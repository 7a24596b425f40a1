"""The evaluation: the policies a replay compares (agentcg, its in-kernel variant, the peers people deploy), the
benchmarks and the demo. Not part of the product."""
