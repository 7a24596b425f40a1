# agentcg: `make demo` boots the default kernel and shows a real result; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
KERNEL ?= debian-6.12
# The kernels `make vmtest-all` runs the whole in-guest suite on, one after the other.
TEST_KERNELS ?= debian-6.12 debian-6.1 agentcg-6.12

.PHONY: setup demo test unit vmtest vmtest-all kernel kernel-clean bench-replay clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml ci/setup-host.sh
	bash ci/setup-host.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e .
	touch $@

demo: setup
	$(PY) -m agentcg demo --kernel $(KERNEL)

# The host tests that take seconds; `make test` also runs the ones that boot a guest (vm) and the fuzzing (fuzz).
unit: setup
	$(PY) -m pytest tests -q -m "not vm and not fuzz"

vmtest: setup
	$(PY) -m agentcg vmtest --kernel $(KERNEL)

vmtest-all: setup
	@failed=; for k in $(TEST_KERNELS); do $(PY) -m agentcg vmtest --kernel $$k || failed="$$failed $$k"; done; \
	if [ -n "$$failed" ]; then echo "vmtests failed on:$$failed"; exit 1; fi

# Host tests and each kernel's share of the in-guest tests (vmtests/suites.yaml), in parallel, our kernel built
# first; long evaluations are `agentcg bench`'s. SLOW=0.5 runs every VM on half a core (agentcg.harness.slowness).
test: setup
	$(if $(SLOW),AGENTCG_SLOW=$(SLOW) )$(PY) -m agentcg test

# Fidelity and achieved speed of the replayer, per recorded trace of the 18-task subset (needs ../shared/traces).
bench-replay: setup
	$(PY) -m agentcg vmrun --kernel $(KERNEL) -- agentcg replay --bench recorded:batch_swebench_18tasks

kernel: setup
	$(PY) -m agentcg kernel build $(KERNEL)

kernel-clean: setup
	$(PY) -m agentcg kernel clean $(if $(filter command line,$(origin KERNEL)),$(KERNEL))

clean:
	rm -rf results build
