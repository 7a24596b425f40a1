"""The kernel-in-the-loop test framework: kernels (table, build, cache), virtme-ng VMs, the pytest plugins that
run vmtests/ in a guest, the parallel `make test` suite, splat scanning and the memory hog tests allocate with.
Not part of the product: agentcg/ imports nothing from here."""
