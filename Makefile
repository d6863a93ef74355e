# bsr top-level targets.  `make check` is the one command CI runs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# every test bounded (guest boots included) so a hang cannot stall CI
PYTEST := $(PY) -m pytest -p no:cacheprovider -ra --timeout=1200 --durations=25
# extra pytest arguments, e.g. make soak PYTEST_ARGS="-k bsr"
PYTEST_ARGS ?=
# Guest kernel: newest installed image that also has build headers
# (never `uname -r`: the host's kernel is not the guest's).
KVER ?= $(shell tools/kver.sh)
CHECKPATCH := .cache/checkpatch/scripts/checkpatch.pl
CHECKPATCH_SRCS = $(filter-out kmod/bsr_nl_gen.c kmod/bsr_nl_gen.h kmod/%.mod.c,$(wildcard kmod/*.c kmod/*.h))

# pytest exits 5 when it collected nothing: not a failure here.
define run_pytest
	@set +e; $(PYTEST) $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected for: $(1)"; rc=0; fi; exit $$rc
endef

.PHONY: all check setup unit vm kmod abi-check soak bench demo checkpatch clean

all: kmod

# Tests first, checkpatch after (it takes ~1 s); both must pass.
check: setup kmod
	$(call run_pytest,tests/unit tests/vm)
	@$(MAKE) --no-print-directory checkpatch

setup:
	@tools/setup.sh

kmod:
	$(MAKE) -C kmod KVER=$(KVER)

unit:
	$(call run_pytest,tests/unit)

vm: kmod
	$(call run_pytest,tests/vm)

abi-check:
	python3 tools/gen_abi.py --check

# One soak test is the whole 20-iteration loop (~40 min): a 2 h bound, not 20 min.
soak: kmod
	$(call run_pytest,tests/vm -m soak --timeout=7200)

bench: kmod
	@tools/run_bench.sh

demo: setup kmod
	@tools/demo.sh

checkpatch:
	@test -x $(CHECKPATCH) || { echo "checkpatch: $(CHECKPATCH) missing, run make setup"; exit 1; }
	$(CHECKPATCH) --no-tree --quiet --show-types --ignore FILE_PATH_CHANGES,SPDX_LICENSE_TAG -f $(CHECKPATCH_SRCS)

clean:
	$(MAKE) -C kmod KVER=$(KVER) clean
