"""How agentcg enforces its decisions in the kernel: the in-kernel memory policy (memcg_bpf_ops), the sched_ext
scheduler and the exec tracers, each a driver for one BPF program of bpf/."""
