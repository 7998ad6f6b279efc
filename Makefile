# The two commands a newcomer needs (each installs what it needs first):
#   make demo   - the whole lifecycle on the built zip, in a sandbox
#   make test   - every test (unit, end-to-end, faults, fuzzing)
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
VERSION := $(shell tr -d ' \n' < VERSION)

.PHONY: all setup build package test unit e2e fuzz demo bench lint clean prepare

all: package

setup:
	@sh scripts/setup.sh

build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags netgo,osusergo -ldflags "-X main.version=$(VERSION)" -o build/aadsshlogin-handler .

package: setup
	@sh scripts/package.sh dist

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

unit: prepare
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v /test/e2e)

e2e: setup prepare
	$(GO) test -count=1 -timeout 70m ./test/e2e/

# Each fuzz target explores a fixed number of new inputs on top of its
# committed corpus: a count, not a duration (see scripts/fuzz.sh).
FUZZN ?= 10000x
fuzz:
	@sh scripts/fuzz.sh $(FUZZN)

# The caches (fixtures, images) are built first, in the host's network
# namespace: the unit tier then runs with loopback only (test/loopback).
prepare: setup
	AADSSH_PREPARE=1 AADSSH_E2E_REQUIRED=$${AADSSH_E2E_REQUIRED:-1} $(GO) test -count=1 -timeout 60m -run '^TestPrepareCaches$$' ./test/sandbox

test: setup lint prepare
	AADSSH_E2E_REQUIRED=$${AADSSH_E2E_REQUIRED:-1} $(GO) test -count=1 -timeout 80m ./...
	@sh scripts/fuzz.sh $(FUZZN)

demo: setup
	@mkdir -p build
	$(GO) test -c -o build/demo.test ./test/demo
	cd test/demo && AADSSH_DEMO=1 AADSSH_E2E_REQUIRED=1 ../../build/demo.test -test.run '^TestDemo$$' -test.count=1 -test.timeout 30m

bench: setup
	AADSSH_BENCH=1 $(GO) test ./test/bench -run '^TestBenchmarks$$' -count=1 -v -timeout 60m

clean:
	rm -rf build dist
