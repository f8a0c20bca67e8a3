# tasker: `make run` starts the development system, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
MODE ?= development
API_PORT ?= 8888

.PHONY: run stop status test test-long unit lint clean bench fuzz

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

var/tasker.env:
	@mkdir -p var && umask 077 && { \
	  for name in MYSQL_PASSWD RABBITMQ_PASSWD TASKER_SUPERVISOR_PASSWORD; do \
	    printf '%s=%s\n' $$name "$$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"; \
	  done; } > $@
	@echo "generated passwords in $@ (the environment overrides them)"

## run: install, set up MariaDB and RabbitMQ, start supervisord with the API and managers.
run: $(VENV)/.installed var/tasker.env
	scripts/ensure-services
	scripts/setup-mysql-user
	bin/initialize --mode $(MODE) -d -r
	@# A running supervisord is restarted whole, so its programs see the current environment.
	@if pid=$$(bin/supervisorctl --mode $(MODE) pid 2>/dev/null) && [ "$$pid" -gt 0 ] 2>/dev/null; then \
	  bin/supervisorctl --mode $(MODE) shutdown; \
	  while kill -0 "$$pid" 2>/dev/null; do sleep 1; done; \
	fi
	bin/supervisord --mode $(MODE)
	scripts/wait-for-url http://127.0.0.1:$(API_PORT)/health 60
	@for i in $$(seq 30); do bin/supervisorctl --mode $(MODE) status >/dev/null && break; sleep 1; done
	bin/supervisorctl --mode $(MODE) status

stop:
	-bin/supervisorctl --mode $(MODE) shutdown

status:
	bin/supervisorctl --mode $(MODE) status

## test: the suite, against the real RabbitMQ and MariaDB (started if down), but for the
## tests that wait a minute or more by nature: `make test-long` runs those.
test: $(VENV)/.installed lint
	scripts/ensure-services
	$(VENV)/bin/pytest -m "not long" $(PYTEST_ARGS)

test-long: $(VENV)/.installed
	scripts/ensure-services
	$(VENV)/bin/pytest -m long $(PYTEST_ARGS)

## fuzz: Schemathesis over every phase and check, against a test-mode API that wants a token.
fuzz: $(VENV)/.installed
	scripts/ensure-services
	bin/initialize --mode test -d -r
	scripts/fuzz

unit: $(VENV)/.installed
	$(VENV)/bin/pytest -m "not integration" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check tasker tests bench

$(VENV)/.bench-installed: $(VENV)/.installed setup.py
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	touch $@

## bench: tasker's benchmark: its own API and managers, and the Celery peer, one
## table; BENCH_ARGS=--help. Celery comes from the bench extra, not the runtime dependencies.
bench: $(VENV)/.bench-installed
	scripts/ensure-services
	$(VENV)/bin/python -m bench.run $(BENCH_ARGS)

clean: stop
	rm -rf var build $(VENV) *.egg-info

.PHONY: cluster cluster-stop test-cluster

## cluster: three RabbitMQ nodes (AMQP 5681-5683) and HAProxy (19200) on this machine, two
## bin/api behind it and a manager per worker endpoint, all under var/cluster
## (scripts/cluster-system); the machine's own RabbitMQ is left alone.
cluster: $(VENV)/.installed
	scripts/ensure-services
	scripts/cluster-system start

cluster-stop:
	scripts/cluster-system stop

## test-cluster: tasker on that cluster through node and API faults (tests/cluster, a few
## minutes; not part of `make test`). It starts the cluster and stops it at the end.
test-cluster: $(VENV)/.installed
	scripts/ensure-services
	TASKER_CLUSTER_TESTS=1 $(VENV)/bin/pytest tests/cluster $(PYTEST_ARGS)
