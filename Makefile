# eventhooks — see README.md.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BIN       := bin/eventhooks
# Packages with concurrency, tested under the race detector.
RACE_PKGS := ./processor/... ./hooks/... ./admin/... ./ingest/... ./sinks/... ./broker/... ./scripting/... ./bench/... ./internal/... ./deliveries/... ./console/...

.PHONY: run build test test-race vet lint bench fuzz clean

## run: embedded Kafka broker + processor + Admin API on 127.0.0.1 (data in .eventhooks/)
run: build
	./$(BIN) dev

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/eventhooks

## test: vet, all tests, then the concurrent packages again under -race
test: vet
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race -timeout 25m $(RACE_PKGS)

vet:
	$(GO) vet ./...

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: hot-path Go benchmarks, then the end-to-end bench with its baselines
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./hooks/ ./processor/ ./processor/gates/ ./sinks/ ./scripting/ ./internal/jsonx/
	$(GO) run ./cmd/eventhooks bench --baseline --log-level warn

## fuzz: each fuzz target for FUZZTIME (decoders, encoders, templates, JS inputs, fingerprints)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./hooks/
	$(GO) test -run '^$$' -fuzz '^FuzzEnvelopeRecord$$' -fuzztime $(FUZZTIME) ./hooks/
	$(GO) test -run '^$$' -fuzz '^FuzzAppendString$$' -fuzztime $(FUZZTIME) ./internal/jsonx/
	$(GO) test -run '^$$' -fuzz '^FuzzWebhookBody$$' -fuzztime $(FUZZTIME) ./sinks/
	$(GO) test -run '^$$' -fuzz '^FuzzTemplate$$' -fuzztime $(FUZZTIME) ./scripting/
	$(GO) test -run '^$$' -fuzz '^FuzzLambdaInput$$' -fuzztime $(FUZZTIME) ./scripting/
	$(GO) test -run '^$$' -fuzz '^FuzzLazyStringify$$' -fuzztime $(FUZZTIME) ./scripting/
	$(GO) test -run '^$$' -fuzz '^FuzzExactMembers$$' -fuzztime $(FUZZTIME) ./scripting/
	$(GO) test -run '^$$' -fuzz '^FuzzFingerprint$$' -fuzztime $(FUZZTIME) ./processor/gates/
	$(GO) test -run '^$$' -fuzz '^FuzzParkedEntry$$' -fuzztime $(FUZZTIME) ./processor/

clean:
	rm -rf bin .eventhooks
