# Air-gapped LLM inference hosts: the two commands are `make lab` and `make test`.
# Every target installs what it needs first (`make setup`), so a fresh Debian 12
# machine needs nothing but this checkout.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT      := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
PYTHON    ?= /usr/bin/python3
VENV      := $(ROOT)/.venv
STAMPS    := $(ROOT)/build/stamps
NODES     ?=
SCENARIO  ?=

export PATH := $(VENV)/bin:$(PATH)
export CONTAINERS_CONF := $(ROOT)/lab/containers.conf
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
export PYTHONDONTWRITEBYTECODE := 1
ifneq ($(NODES),)
export AIRGAP_LAB_NODES := $(NODES)
endif

# Debian packages the controller needs (the README lists them with reasons):
# podman with runc, netavark, aardvark-dns and iptables (netavark runs
# `iptables --version` before every bridge network: without it `podman run`
# fails with "netavark: No such file or directory"), debootstrap for the base
# image, apt-utils and gnupg for the signed lab mirror, nftables and iproute2
# for the namespace tests, chromium and poppler-utils for the report's browser
# test, openssh-client for SSH to the lab's nodes and report signing, curl
# for benches. (make test-vm installs qemu itself: make test does not need it.)
DEB_PACKAGES := podman runc netavark aardvark-dns iptables debootstrap python3-venv apt-utils gnupg \
                nftables iproute2 chromium poppler-utils openssh-client curl ca-certificates

.PHONY: help setup deps venv collections image mirror smoke lab lab-down test test-vm lint unit molecule bench clean

help:
	@echo "make lab       build the lab, converge it (site.yml), audit it, print the report path"
	@echo "make test      lint, unit tests and every Molecule scenario (what CI runs)"
	@echo "make lab-down  remove the lab's containers and networks"
	@echo "make test-vm   802.1Q VLANs in two QEMU guests (about 6 minutes, 9 with a cold image)"
	@echo "make setup | lint | unit | molecule [SCENARIO=name] | bench"

# The smoke check comes last and stops make when podman cannot run a container
# on a dual-stack bridge network, naming the likely missing package or setting.
setup: deps venv collections image mirror smoke

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(STAMPS)/venv
$(STAMPS)/venv: requirements.txt
	@mkdir -p $(STAMPS)
	@[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	@touch $@

collections: venv
	@python scripts/check_collections.py

image: deps
	@scripts/build_base_image.sh
	@scripts/build_vllm_standin_image.sh

mirror: deps
	@scripts/build_mirror.sh

smoke: image
	@scripts/smoke_podman.sh

lab: setup
	ansible-playbook playbooks/lab_up.yml
	ansible-playbook playbooks/site.yml
	ansible-playbook playbooks/monitor_breach_test.yml
	ansible-playbook playbooks/audit.yml
	@echo "Report: $$(readlink -f reports/latest)/index.html"

lab-down: venv
	ansible-playbook playbooks/lab_down.yml

lint: venv
	yamllint -s .
	ansible-lint

# The browser test must run, not skip, wherever `make test` runs.
unit: setup
	AIRGAP_REQUIRE_BROWSER=1 pytest -q tests

molecule: setup
	@if [ -n "$(SCENARIO)" ]; then molecule test -s $(SCENARIO); else molecule test --all; fi

test: setup lint unit molecule

# VLANs need a kernel with 802.1Q, which containers here lack: two Debian 12
# guests under QEMU, configured by the network_vlan role (tests/vm/).
test-vm: deps venv
	tests/vm/run_vlan_vm_test.sh

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; python $$b; done

clean: lab-down
	rm -rf build reports
