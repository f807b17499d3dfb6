# labkit + the course "Contêineres na prática".
#
#   make lab     set everything up (first time), then JupyterLab in Portuguese on notebooks/
#   make test    set everything up, then every test: unit, integration (root), notebooks (nbval)
#   make setup   the shared part: Debian packages, .venv, labkit installed editable, catalog
#   make doctor  what this machine has for the course (labkit doctor)
#   make record  re-execute notebooks and store their outputs (NB=notebooks/x.ipynb for one),
#                only on a quiet machine (FORCE=1 records anyway)
#   make bench   benchmarks (bench/bench_*.py), not tests
#   make classroom  (root) set up a class (STUDENTS=file or a,b,c; a demo class if none), then
#                JupyterHub on 127.0.0.1:8000 (labkit classroom setup; docs/classroom.md)
#   make clean   caches and Jupyter state; `make distclean` also removes .venv
#
# Everything is idempotent: a second `make setup` only checks (well under a second).

SHELL := /bin/bash
.DEFAULT_GOAL := help
.NOTPARALLEL:

VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.labkit-setup-done
CATALOG := labkit/locale/pt_BR/LC_MESSAGES/labkit.mo
OVERRIDES_SRC := jupyter/overrides.json
OVERRIDES     := $(VENV)/share/jupyter/lab/settings/overrides.json
# labkit classroom's proxy (configurable-http-proxy from npm; see "classroom" below)
CHP_DIR := $(CURDIR)/.cache/classroom/chp
CHP     := $(CHP_DIR)/node_modules/.bin/configurable-http-proxy

# Debian packages the course and its tests use (checked with dpkg-query, installed when missing).
# Ubuntu names its kernel meta-package differently; a package this distribution or architecture
# does not have (Ubuntu's chromium is a snap) is skipped with a warning, never a failed set-up,
# and remembered in .cache/apt-absent so that the next run does not call apt-get update again.
OS_ID  := $(shell . /etc/os-release 2>/dev/null && echo $$ID)
KERNEL_PKG := $(if $(filter ubuntu,$(OS_ID)),linux-image-generic,linux-image-amd64)
# Every external command a test, a notebook or labkit runs comes from one of these (under
# CI=true a test skipped because one is missing fails: tests/requirements.py):
#   debootstrap (debian:<suite> images), gcc + libc6-dev (the static security probes), openssl
#   (the registry's TLS and token tests), zstd (zstd layers), util-linux + mount + bsdutils
#   (unshare, nsenter, setpriv, mount, script: part of every Debian, listed to be sure),
#   libatomic1: the node binary inside the playwright wheel (tests/e2e) needs it;
#   e2fsprogs (mke2fs -d: the root disk of labkit.vm); nftables (nft: bridge networks' NAT);
#   libseccomp2 (labkit.kernel.seccomp compiles the seccomp profile with it, through ctypes).
#   catatonit: podman's pause process (`podman kube play` in notebook 06 builds its pause image).
DEBS := busybox-static podman skopeo runc crun uidmap iproute2 qemu-system-x86 $(KERNEL_PKG) e2fsprogs \
        docker-registry umoci hyperfine python3-venv chromium chromium-driver libatomic1 \
        debootstrap gcc libc6-dev linux-libc-dev openssl zstd util-linux mount bsdutils nftables \
        libseccomp2 catatonit slirp4netns nodejs

# Jupyter, IPython and matplotlib keep their state inside the project, never in ~.
STATE := $(CURDIR)/.cache
export JUPYTER_CONFIG_DIR        := $(STATE)/jupyter/config
export JUPYTER_DATA_DIR          := $(STATE)/jupyter/data
export JUPYTER_RUNTIME_DIR       := $(STATE)/jupyter/runtime
export JUPYTERLAB_SETTINGS_DIR   := $(STATE)/jupyter/lab/user-settings
export JUPYTERLAB_WORKSPACES_DIR := $(STATE)/jupyter/lab/workspaces
export JUPYTER_PLATFORM_DIRS     := 1
export IPYTHONDIR                := $(STATE)/ipython
export MPLCONFIGDIR              := $(STATE)/matplotlib
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# `labkit` and `jupyter` from the venv, also in JupyterLab's terminals and in `!labkit` cells.
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# make lab
LAB_IP   ?= 127.0.0.1
LAB_PORT ?= 8888
LAB_ARGS ?=
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

# make test
PYTEST_ARGS ?=
NOTEBOOKS   := $(sort $(wildcard notebooks/*.ipynb))
NB_SANITIZE := notebooks/nbval_sanitize.cfg
# strict nbval (every stored output compared after sanitizing), kernel from .venv, no cell may hang CI
NBVAL_ARGS  ?= --nbval --nbval-sanitize-with $(NB_SANITIZE) --nbval-current-env --nbval-cell-timeout=300 \
               -p tests.notebooks_home
# The cgroup-v2 VM tests live in their own target (tools/cg2vm.py); run them when it exists.
CG2_TARGET  := $(shell grep -qs '^test-cgroup2:' $(MAKEFILE_LIST) && echo test-cgroup2)
SETUP_DEP   := $(if $(SKIP_SETUP),,setup)
ANY_TESTS   := $(shell find tests -name 'test_*.py' -print -quit 2>/dev/null)$(NOTEBOOKS)

.PHONY: help setup debs catalog jupyter-settings lab test test-unit test-integration \
        test-notebooks test-e2e record bench clean distclean doctor

help:
	@sed -n '3,/^$$/{/^$$/q;s/^# \{0,1\}//p}' $(firstword $(MAKEFILE_LIST))

# ---------------------------------------------------------------------------------------------
# setup

setup: debs $(STAMP) catalog jupyter-settings $(CHP)

# Debian packages: one dpkg-query for all of them; apt-get update once, only if one is missing.
debs:
	@missing=$$(for p in $(DEBS); do \
	    grep -qsx "$$p" $(STATE)/apt-absent && continue; \
	    dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q ' ok installed$$' || echo "$$p"; \
	  done | tr '\n' ' '); \
	if [ -z "$${missing// /}" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "make setup: faltam pacotes Debian (missing Debian packages): $$missing" >&2; \
	  echo "  rode como root (run as root): apt-get install -y --no-install-recommends $$missing" >&2; \
	  exit 0; \
	fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get -o DPkg::Lock::Timeout=300 update -qq || exit 1; \
	install=; absent=; \
	for p in $$missing; do \
	  if apt-cache show --no-all-versions "$$p" >/dev/null 2>&1; then install="$$install $$p"; else absent="$$absent $$p"; fi; \
	done; \
	if [ -n "$$absent" ]; then mkdir -p $(STATE); printf '%s\n' $$absent >> $(STATE)/apt-absent; \
	  echo "make setup: aviso (warning): sem pacote nesta distribuição (not available here):$$absent" >&2; fi; \
	if [ -z "$$install" ]; then exit 0; fi; \
	mkdir -p $(STATE); \
	echo "make setup: instalando (installing)$$install"; \
	echo "  alguns minutos na primeira vez (a few minutes the first time); log: .cache/apt-install.log"; \
	apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends $$install \
	  > $(STATE)/apt-install.log 2>&1 \
	  || { tail -n 40 $(STATE)/apt-install.log >&2; echo "make setup: apt-get install falhou (failed)" >&2; exit 1; }

# The virtual environment, rebuilt when pyproject.toml changes. Order-only on debs: python3-venv
# must be there first, but an unchanged package list does not reinstall anything. A lock keeps
# two `make` runs in this tree (or two people) from running pip in the same venv at once.
$(STAMP): pyproject.toml | debs
	@mkdir -p $(STATE); exec 9>$(STATE)/setup.lock; flock 9; \
	finder=$$(ls $(VENV)/lib/python3*/site-packages/__editable___labkit*_finder.py 2>/dev/null); \
	if [ -f $@ ] && [ $@ -nt pyproject.toml ] && [ -z "$$finder" ]; then exit 0; fi; \
	if [ ! -x $(VENV)/bin/pip ]; then \
	  rm -rf $(VENV); \
	  echo "make setup: criando (creating) $(VENV)"; \
	  if [ -x /usr/bin/python3 ]; then /usr/bin/python3 -m venv $(VENV); else python3 -m venv $(VENV); fi || exit 1; \
	fi; \
	echo "make setup: pip install -e '.[lab,test]'"; \
	$(VPY) -m pip install -q --upgrade pip && \
	$(VPY) -m pip install -q -e '.[lab,test,classroom]' --config-settings editable_mode=compat && \
	touch $@

# The pt-BR catalog (Babel, tools/msgfmt.py; rewrites the .mo only when the fragments changed).
catalog: $(STAMP)
	@$(VPY) tools/msgfmt.py
	@# bytecode ahead of time: with PYTHONDONTWRITEBYTECODE set, every `labkit` start would recompile
	@$(VPY) -m compileall -q -j 0 labkit >/dev/null

# JupyterLab in Portuguese: the language pack is installed by pip, the locale is chosen here.
jupyter-settings: $(STAMP)
	@mkdir -p $(dir $(OVERRIDES))
	@cmp -s $(OVERRIDES_SRC) $(OVERRIDES) || cp $(OVERRIDES_SRC) $(OVERRIDES)

# ---------------------------------------------------------------------------------------------
# lab

lab: setup
	@mkdir -p $(JUPYTER_CONFIG_DIR) $(JUPYTER_DATA_DIR) $(JUPYTER_RUNTIME_DIR) $(IPYTHONDIR) $(MPLCONFIGDIR)
	$(VENV)/bin/jupyter lab --config=jupyter/jupyter_server_config.py \
	  --ServerApp.root_dir=$(CURDIR)/notebooks --ip=$(LAB_IP) --port=$(LAB_PORT) \
	  --no-browser $(ALLOW_ROOT) $(LAB_ARGS)

doctor: setup
	@$(VENV)/bin/labkit doctor

# ---------------------------------------------------------------------------------------------
# test
#
# Each suite runs even when an earlier one failed; the summary names the failed ones, counts
# each suite's tests and lists every skip of every suite with its reason (tools/test_summary.py,
# from reports/junit-<suite>.xml). Under CI=true (.ci/run, fresh-machine) a test skipped for a
# tool or package that make setup installs is a failure (tests/requirements.py); only real skips
# (not x86_64, not root, LABKIT_SPAWN=fork...) stay skips.
# pytest's exit code 5 ("no tests collected") is a failure when the suite has test files, and a
# visible "skipped" line when it has none yet (an empty tests/integration is not an error).

test: setup
	@if [ -z "$(ANY_TESTS)" ]; then echo "make test: nenhum teste encontrado (no tests found at all)" >&2; exit 1; fi; \
	echo "=== labkit doctor ==="; $(VENV)/bin/labkit doctor || echo "(labkit doctor: falta algo essencial / something essential is missing)"; \
	rm -f reports/junit-*.xml; \
	failed=; suites="test-unit test-integration test-notebooks test-e2e $(CG2_TARGET)"; all="$$suites"; \
	if ! mountpoint -q / 2>/dev/null; then \
	  suites="test-unit $(CG2_TARGET)"; \
	  echo; echo "make test: PULADOS (skipped): test-integration test-notebooks test-e2e — / não é um ponto de montagem"; \
	  echo "  (um chroot?): nenhum contêiner roda com segurança aqui, o pivot_root exige que / seja a raiz do"; \
	  echo "  namespace de montagem (o podman falha igual). Rode make test numa máquina ou VM de verdade."; \
	  echo "  (/ is not a mount point, a chroot?: no container can run safely here; use a real machine or VM)"; \
	fi; \
	for t in $$suites; do \
	  echo; echo "=== make $$t ==="; \
	  $(MAKE) --no-print-directory $$t SKIP_SETUP=1 || failed="$$failed $$t"; \
	done; echo; \
	$(VPY) tools/test_summary.py $$(echo $$all | sed 's/test-//g'); echo; \
	if [ -n "$$failed" ]; then echo "make test: FALHOU (failed):$$failed" >&2; exit 1; fi; \
	echo "make test: tudo passou (all passed): $$suites"

# $(call pytest_suite,name,paths,has-tests,extra pytest args)
define pytest_suite
	@if [ -z "$(strip $(3))" ]; then echo "make test: $(1): nenhum teste ainda (no tests yet), pulado (skipped)"; exit 0; fi; \
	mkdir -p $(IPYTHONDIR) $(MPLCONFIGDIR) $(JUPYTER_RUNTIME_DIR); \
	$(VPY) -m pytest -rs --junitxml=reports/junit-$(1).xml $(4) $(PYTEST_ARGS) $(2); rc=$$?; \
	if [ $$rc = 5 ]; then \
	  case " $(PYTEST_ARGS) " in *" -k"*|*" -m"*|*" --deselect"*|*" --lf"*) \
	    echo "make test: $(1): nothing selected by PYTEST_ARGS"; exit 0;; esac; \
	  echo "make test: $(1): há arquivos de teste mas o pytest não coletou nenhum teste (test files but no tests collected)" >&2; \
	fi; exit $$rc
endef

test-unit: $(SETUP_DEP)
	$(call pytest_suite,unit,tests/unit,$(shell find tests/unit -name 'test_*.py' -print -quit 2>/dev/null))

test-integration: $(SETUP_DEP)
	$(call pytest_suite,integration,tests/integration,$(shell find tests/integration -name 'test_*.py' -print -quit 2>/dev/null))

test-notebooks: $(SETUP_DEP)
	@if [ -n "$(NOTEBOOKS)" ] && [ ! -f $(NB_SANITIZE) ]; then echo "make test: $(NB_SANITIZE) is missing" >&2; exit 1; fi
	$(call pytest_suite,notebooks,$(NOTEBOOKS),$(NOTEBOOKS),$(NBVAL_ARGS))

# The notebooks run in JupyterLab (pt-BR) in headless Chromium; screenshots in reports/screenshots/.
# Skipped, with the reason, without root; without playwright or chromium too, except under CI.
test-e2e: $(SETUP_DEP)
	$(call pytest_suite,e2e,tests/e2e,$(shell find tests/e2e -name 'test_*.py' -print -quit 2>/dev/null))

# Record a notebook's reference outputs in the same environment `make test` checks them in
# (venv on PATH, Jupyter/IPython state in .cache/): `make record NB=notebooks/03_cgroups.ipynb`,
# or every notebook with `make record`.
# Only on a quiet machine: CPU figures recorded while other work runs (another make test, a
# build) contradict the notebooks' text. The rule (tools/wait_idle.py): before each notebook,
# the CPU the whole machine used over 2 s, in % of one core as the notebooks count it, must be
# at most RECORD_MAX_CPU (25); while it is above, make record waits, up to RECORD_WAIT seconds
# (300), then refuses. FORCE=1 records anyway.
NB ?= $(NOTEBOOKS)
RECORD_MAX_CPU ?= 25
RECORD_WAIT    ?= 300
record: $(SETUP_DEP)
	@mkdir -p $(IPYTHONDIR) $(MPLCONFIGDIR) $(JUPYTER_RUNTIME_DIR)
	@for nb in $(NB); do \
	  if [ -z "$(FORCE)" ]; then \
	    $(VPY) tools/wait_idle.py --max $(RECORD_MAX_CPU) --wait $(RECORD_WAIT) || exit 1; \
	  fi; \
	  echo "make record: $$nb"; \
	  $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=300 "$$nb" || exit 1; \
	done

# ---------------------------------------------------------------------------------------------
# bench: bench/run.py when it exists, else every bench/bench_*.py in name order

bench: setup
	@if [ -f bench/run.py ]; then exec $(VPY) bench/run.py; fi; \
	files=$$(ls bench/bench_*.py 2>/dev/null); \
	if [ -z "$$files" ]; then echo "make bench: nenhum benchmark em bench/ (no benchmarks yet)"; exit 0; fi; \
	for f in $$files; do echo "=== $$f ==="; $(VPY) $$f || exit $$?; done

# ---------------------------------------------------------------------------------------------

clean:
	rm -rf $(STATE) .pytest_cache reports build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# ---------------------------------------------------------------------------------------------
# cgroup v2 for real: the cgroup tests inside a throw-away QEMU VM booting the Debian kernel with a
# pure cgroup2 hierarchy (tools/cg2vm.py). Skipped, loudly, when qemu or a kernel image is missing;
# under CI=true that is a failure (make setup installs both). CI is passed into the VM.
# Python under QEMU/TCG is 10-25x slower: no plugin autoload (nbval alone costs ~30 s there).

CG2_TESTS ?= $(wildcard tests/integration/test_cgroups*.py tests/integration/test_devices.py tests/integration/test_cgroup_view.py tests/integration/test_monitor.py tests/integration/test_stats.py tests/integration/test_spare.py tests/integration/test_security.py tests/integration/test_privileged.py tests/cgroup2 tests/integration/test_classroom.py)
# bridge networks in the VM (its recovery after kill -9 is the engine's, on v2 there): names, a published
# port, the default bridge, cleanup (the leak fixture checks links, nft chains and leases after each)
CG2_NET = tests/integration/test_network.py
CG2_TESTS += $(addprefix $(CG2_NET)::,test_two_containers_reach_each_other_by_name_and_alias \
  test_published_port_answers_on_loopback test_rules_in_labkit_table \
  test_port_in_use_is_refused_before_anything_is_made test_engine_kill_and_restart_rebuild_rules_without_duplicates \
  test_default_bridge_like_docker_files_no_names_and_not_removable)
.PHONY: test-cgroup2
test-cgroup2: $(SETUP_DEP)
	@mkdir -p reports
	$(VPY) tools/cg2vm.py --skip-missing --rw $(CURDIR)/reports -e PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 -e CI -- \
	  '$(CURDIR)/$(VPY) -m pytest -p no:cacheprovider -s -rs $(PYTEST_ARGS) --junitxml=reports/junit-cgroup2.xml $(CG2_TESTS)'

# ---------------------------------------------------------------------------------------------
# classroom: one server, a class (labkit classroom setup, docs/classroom.md). The hub's proxy,
# configurable-http-proxy, comes from the npm registry: 4.6.x runs on Debian 12's node 18 (5.x
# needs node >= 20). Debian's nodejs has npm apart; nodesource's carries its own.
STUDENTS ?= aluno1,aluno2,aluno3
HUB_ETC  ?= /etc/labkit
HUB_DATA ?= /var/lib/labkit/classroom

$(CHP):
	@mkdir -p $(STATE); command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q --no-install-recommends npm \
	  >> $(STATE)/apt-install.log 2>&1; } || { echo "make setup: sem npm (no npm): apt-get install npm" >&2; exit 0; }; \
	mkdir -p $(CHP_DIR) && cd $(CHP_DIR) && npm install --no-audit --no-fund --silent configurable-http-proxy@4.6

.PHONY: classroom
classroom: setup
	@[ "$$(id -u)" = 0 ] || { echo "make classroom: rode como root (run as root)" >&2; exit 1; }
	$(VENV)/bin/labkit classroom setup --students $(STUDENTS) --create --proxy $(CHP) \
	  --etc $(HUB_ETC) --data $(HUB_DATA) $(CLASSROOM_ARGS)
	cd $(HUB_DATA) && exec $(CURDIR)/$(VENV)/bin/jupyterhub -f $(HUB_ETC)/jupyterhub/jupyterhub_config.py
