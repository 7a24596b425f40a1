# agentcg: `make demo` boots the default kernel and shows a real result; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
KERNEL ?= debian-6.12
# The kernels `make test` runs the in-guest suite on.
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

unit: setup
	$(PY) -m pytest tests -q

vmtest: setup
	$(PY) -m agentcg vmtest --kernel $(KERNEL)

vmtest-all: setup
	@failed=; for k in $(TEST_KERNELS); do $(PY) -m agentcg vmtest --kernel $$k || failed="$$failed $$k"; done; \
	if [ -n "$$failed" ]; then echo "vmtests failed on:$$failed"; exit 1; fi

test: unit vmtest-all

# Fidelity and achieved speed of the replayer, per recorded trace of the 18-task subset (needs ../shared/traces).
bench-replay: setup
	$(PY) -m agentcg vmrun --kernel $(KERNEL) -- agentcg replay --bench recorded:batch_swebench_18tasks

kernel: setup
	$(PY) -m agentcg kernel build $(KERNEL)

kernel-clean: setup
	$(PY) -m agentcg kernel clean $(if $(filter command line,$(origin KERNEL)),$(KERNEL))

clean:
	rm -rf results build
