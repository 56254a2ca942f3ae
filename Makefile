# Mamori: the two commands a newcomer needs are `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done

.PHONY: setup demo fleet-demo test test-long unit integration lint bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup:
	bash scripts/setup.sh
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m lab.demo

# A vendor's hub (Prometheus, Alertmanager, rsyslog) watching 10 lab clinics until Ctrl-C: docs/vendor-fleet.md.
fleet-demo: $(STAMP)
	$(PY) -m lab.fleet_demo

# The unit tests run on both cores (pytest-xdist; one file per worker at a time, so module fixtures are made once);
# the integration tests one at a time (each lab is timing-sensitive). Both parts run, even when the first fails.
XDIST := -n 2 --dist loadfile

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	status=0; $(PY) -m pytest -q $(XDIST) tests/unit || status=$$?; \
	$(PY) -m pytest -q --durations=15 tests/integration || status=$$?; exit $$status

# The long lab suites (a fleet of boxes, a hub with its engines, every line type): run by .ci/run, not by `make test`.
# Exit code 5 means "no test collected", which is fine while the folder is empty.
test-long: $(STAMP)
	$(PY) -m pytest -q --durations=10 tests/long || [ $$? -eq 5 ]

unit: $(STAMP)
	$(PY) -m pytest -q $(XDIST) tests/unit

integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache

# Bootable images (README.md, section "The Mamori image"): not part of `make test`; they need root and a few minutes each.
.PHONY: image image-test image-arm64-test
IMAGE_ARCHES ?= amd64 arm64
image:
	for arch in $(IMAGE_ARCHES); do bash scripts/image-build.sh $$arch || exit 1; done

image-test: $(STAMP)
	$(MAKE) image IMAGE_ARCHES=amd64
	bash scripts/image-test.sh

# The Raspberry Pi image (built under qemu-user, about 8 minutes) and its checks: partition table, boot
# files, the initramfs, autoboot.txt, read-only root, the tryboot cycle of mamori-update on the image's own
# partitions.
image-arm64-test: $(STAMP)
	$(MAKE) image IMAGE_ARCHES=arm64
	MAMORI_IMAGE_TEST=1 MAMORI_IMAGE_ARM64=required $(PY) -m pytest -q -p no:cacheprovider tests/image/test_image_arm64.py
