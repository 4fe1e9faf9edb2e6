# Operator shortcuts. Building, testing and running locally are scripts/ (run from anywhere);
# the container stack is docker compose (docker-compose.yml). `make help` lists the targets.

COMPOSE         ?= docker compose
IMAGE           ?= jetstream-cpp:local
OVERLAY         ?= dev
BUILD_DIR       ?= build/ci
# The Jetstream v1 zstd dictionary (never committed): the original Jetstream repository's
# pkg/models/zstd_dictionary. docker-compose.yml mounts $(ZSTD_DICTIONARY) into decode and fanout.
ZSTD_DICTIONARY ?= deploy/zstd/zstd_dictionary
ZSTD_DICTIONARY_URL ?= https://raw.githubusercontent.com/bluesky-social/jetstream/main/pkg/models/zstd_dictionary
export JETSTREAM_ZSTD_DICTIONARY_FILE := $(abspath $(ZSTD_DICTIONARY))

.DEFAULT_GOAL := help
.PHONY: help build test run up down logs ps image zstd-dictionary check-deploy k8s-render dashboards

help: ## this list
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## install missing Debian packages, build the release preset (build/release)
	bash scripts/install-deps.sh
	cmake --preset release
	cmake --build --preset release -j2

test: ## the whole test suite (scripts/test.sh; JETSTREAM_TEST_QUICK=1 for the ci stage only)
	bash scripts/test.sh

run: ## build and run ingest, decode and fanout locally (scripts/run.sh; ws://localhost:6008/subscribe)
	bash scripts/run.sh

up: ## start the compose stack: ingest, decode, 2 fanouts behind HAProxy :6008, Prometheus :9090, Grafana :3000
	@test -s "$(ZSTD_DICTIONARY)" || { \
	  echo "make up: $(ZSTD_DICTIONARY) is missing: the Jetstream v1 zstd dictionary is not in this"; \
	  echo "repository. Run 'make zstd-dictionary' (downloads pkg/models/zstd_dictionary of the"; \
	  echo "original Jetstream repository) or set ZSTD_DICTIONARY=/path/to/zstd_dictionary."; exit 1; }
	$(COMPOSE) up -d --build
	@echo "websocket:  ws://localhost:6008/subscribe"
	@echo "grafana:    http://localhost:3000  (dashboards in the Jetstream folder)"
	@echo "prometheus: http://localhost:9090   haproxy stats: http://localhost:8405/stats"

down: ## stop the compose stack (the event log volume is kept; 'docker compose down -v' deletes it)
	$(COMPOSE) down

logs: ## follow the logs of the compose stack
	$(COMPOSE) logs -f --tail=100

ps: ## the compose stack's containers and their health
	$(COMPOSE) ps

image: ## build the container image (Dockerfile) as $(IMAGE)
	docker build -t $(IMAGE) .

zstd-dictionary: ## download the v1 zstd dictionary to $(ZSTD_DICTIONARY)
	curl -fsSL -o "$(ZSTD_DICTIONARY)" "$(ZSTD_DICTIONARY_URL)"
	@ls -l "$(ZSTD_DICTIONARY)"

check-deploy: ## the deployment checks (ctest label deploy) of $(BUILD_DIR)
	ctest --test-dir $(BUILD_DIR) -L deploy --output-on-failure

k8s-render: ## print the Kubernetes objects of k8s/overlays/$(OVERLAY)
	kubectl kustomize k8s/overlays/$(OVERLAY)

dashboards: ## regenerate dashboards/*.json from dashboards/generate.py
	python3 dashboards/generate.py
