# left4me — run `make help` for the targets.
SHELL := /usr/bin/env bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/left4me/left4me/apis/version.Version=$(VERSION)
GOTEST_FLAGS ?= -race -count=1 -timeout 20m

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: build
build: ## Build l4m-server, l4m-node, l4mctl (and the game, steamcmd and Steam Web API doubles) into bin/.
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...
	CGO_ENABLED=0 $(GO) build -o bin/srcds-double ./hack/srcds-double
	CGO_ENABLED=0 $(GO) build -o bin/steamcmd-double ./hack/steamcmd-double
	CGO_ENABLED=0 $(GO) build -o bin/steam-api-double ./hack/steam-api-double

.PHONY: run
run: build ## Run the single-machine system: API server, one node in a sandbox host, the samples (root).
	./hack/run.sh

.PHONY: generate
generate: ## Regenerate deep copies, the OpenAPI definitions (apis/openapi) and the JSON Schemas (config/schemas).
	$(GO) tool deepcopy-gen --go-header-file hack/boilerplate.go.txt --output-file zz_generated.deepcopy.go ./apis/left4me/v1alpha1
	$(GO) tool openapi-gen --go-header-file hack/boilerplate.go.txt \
		--output-dir apis/openapi --output-pkg github.com/left4me/left4me/apis/openapi --output-file zz_generated.openapi.go \
		--output-model-name-file zz_generated.model_name.go --report-filename hack/api-violations.list \
		--readonly-pkg k8s.io/apimachinery/pkg/apis/meta/v1 --readonly-pkg k8s.io/apimachinery/pkg/runtime --readonly-pkg k8s.io/apimachinery/pkg/version \
		./apis/left4me/v1alpha1 k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime k8s.io/apimachinery/pkg/version k8s.io/apimachinery/pkg/api/resource k8s.io/apimachinery/pkg/util/intstr
	$(GO) run ./hack/gen-schemas -out config/schemas

DEB_OUT ?= dist
DEB_BUILD := $(DEB_OUT)/build

.PHONY: deb
deb: ## Debian packages for amd64 in dist/: l4m-server, l4m-node, l4mctl (nfpm; version from git, DEB_VERSION overrides).
	@set -euo pipefail; v=$$(./hack/deb-version.sh); echo "version $$v"; \
	sde=$$(git log -1 --format=%ct 2>/dev/null || true); [ -z "$$sde" ] || export SOURCE_DATE_EPOCH=$$sde; \
	rm -rf $(DEB_BUILD) && mkdir -p $(DEB_BUILD)/completion $(DEB_BUILD)/man; \
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X github.com/left4me/left4me/apis/version.Version=$$v" -o $(DEB_BUILD)/ ./cmd/l4m-server ./cmd/l4m-node ./cmd/l4mctl; \
	./hack/deb-docs.sh "$$v" $(DEB_BUILD); \
	for u in l4m-server l4m-node; do sed 's|/usr/local/bin/|/usr/bin/|g' config/systemd/$$u.service > $(DEB_BUILD)/$$u.service; done; \
	{ echo "# /etc/left4me/node.yaml: l4m-node join fills this in (see node.yaml.example in"; \
	  echo "# /usr/share/doc/l4m-node/). Until then the l4m-node unit skips its start."; \
	  sed -e 's/^\([^#]\)/# \1/' config/node.yaml.example; } > $(DEB_BUILD)/node.yaml; \
	for sh in bash zsh fish; do $(DEB_BUILD)/l4mctl completion $$sh > $(DEB_BUILD)/completion/l4mctl.$$sh; done; \
	mv $(DEB_BUILD)/completion/l4mctl.zsh $(DEB_BUILD)/completion/_l4mctl; \
	$(GO) run ./hack/gen-man -out $(DEB_BUILD)/man -version "$$v" -date "$$(git log -1 --format=%cI)"; gzip -9n $(DEB_BUILD)/man/*.1; \
	for p in l4m-server l4m-node l4mctl; do \
	  DEB_VERSION=$$v DEB_BUILD=$(DEB_BUILD) $(GO) tool nfpm package --packager deb --config config/deb/$$p.yaml --target $(DEB_OUT)/; \
	done; ls -l $(DEB_OUT)/*.deb

.PHONY: clean-data
clean-data: ## Forget what `make run` stored.
	rm -rf .data

##@ Checks

.PHONY: lint
lint: ## gofmt and go vet.
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...

.PHONY: verify
verify: lint ## lint, generated files current, dependency direction.
	./hack/verify-generated.sh
	./hack/verify-deps.sh
	./hack/verify-no-binaries.sh

.PHONY: test
test: verify ## Everything CI runs: verify, all tests (real etcd, embedded and external), the fleet test on its own, then the fuzzers.
	$(GO) test $(GOTEST_FLAGS) -skip '^TestFleet$$' ./...
	$(MAKE) --no-print-directory e2e-fleet
	./hack/fuzz.sh

.PHONY: e2e
e2e: ## Sandbox hosts with real systemd: the rendered units, the node agent end to end (root only; `make test` runs these too).
	$(GO) test -count=1 -v -skip '^TestFleet$$' ./hack/sandboxtest ./node/unit ./node/e2e

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZ_EXECS executions (default 20000).
	./hack/fuzz.sh

.PHONY: e2e-fleet
e2e-fleet: ## Three sandbox hosts on a bridge in a netns, 3 etcd members, 2 l4m-servers: spread, rollout, failovers (root; `make test` runs it too).
	$(GO) test -count=1 -run TestFleet -v -timeout 20m ./node/e2e

.PHONY: bench-scheduler
bench-scheduler: ## Scheduler: 5,000 Instances over 100 simulated Nodes, vs the same etcd transactions written raw (prints a table).
	$(GO) run ./hack/bench-scheduler

.PHONY: bench-idle
bench-idle: ## Idle fleet: 1,000 simulated nodes with 10, then 50 Instances each, old status PATCH heartbeat vs Lease renewal (etcd writes, bytes, API CPU, Node watch events; prints a table; NODES sets the count).
	$(GO) run ./hack/bench-idle -nodes $(or $(NODES),1000)

.PHONY: bench-fleet
bench-fleet: ## 300 Instances over the fleet test's 3 sandbox hosts, API create→Ready vs bare systemd-run→A2S (root).
	L4M_BENCH=1 $(GO) test -count=1 -run TestFleetBenchmark -v -timeout 30m ./node/e2e

.PHONY: bench-burst
bench-burst: ## 100 Instances applied at once on one sandbox host → all running and all Ready, vs 100 bare systemd-run starts on it; fleet's and Nomad's figures beside them (root).
	L4M_BENCH=1 $(GO) test -count=1 -run TestBurstBenchmark -v -timeout 30m ./node/e2e

.PHONY: bench-install
bench-install: ## New game build published → all 300 Instances over 3 sandbox hosts on it, vs the steamcmd double's own download (root).
	L4M_BENCH=1 $(GO) test -count=1 -run TestInstallBenchmark -v -timeout 30m ./node/e2e

.PHONY: bench-overlays
bench-overlays: ## 100 Instances on one sandbox host stacking 3 fetched Overlays (archive, git, Workshop) vs the same trees as path Overlays, apply→all Ready (root; N sets the count).
	L4M_BENCH=1 $(GO) test -count=1 -run TestOverlayBenchmark -v -timeout 30m ./node/e2e

.PHONY: bench-fetch
bench-fetch: ## Overlay fetcher: download+extract a generated 500 MB tar.gz from loopback vs `curl | tar -xz` of it (prints a table; FETCH_MB sets the size).
	$(GO) run ./hack/bench-fetch -size $(or $(FETCH_MB),500)

.PHONY: bench
bench: ## API vs raw etcd throughput, list and watch latency (prints a table).
	$(GO) run ./hack/bench

.PHONY: bench-watch
bench-watch: ## Instance creates/s from 16 clients with 0, 500 and 5,000 node watches open (one connection each), and the API server's memory per watch (prints a table).
	$(GO) run ./hack/bench-watch

.PHONY: bench-rcon
bench-rcon: ## RCON `status` through the API (server → node agent's pinned TLS → srcds double) vs direct RCON to the same game, 500 each (root; prints a table).
	$(GO) run ./hack/bench-rcon -n $(or $(N),500)

.PHONY: bench-dashboard
bench-dashboard: ## Dashboard: fleet page with 1,000 Instances (render time, bytes) vs the API's LIST; Instance Ready→shown in headless Chromium vs the API watch (prints a table).
	$(GO) run ./hack/bench-dashboard

.PHONY: bench-node
bench-node: ## Node agent on a sandbox host: write→UnitActive/Ready vs bare systemd-run, agent RSS and idle CPU (root).
	L4M_BENCH=1 $(GO) test -count=1 -run TestNodeBenchmark -v -timeout 30m ./node/e2e
