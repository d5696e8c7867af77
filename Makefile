# make build · make run · make test · make bench · make bench-scale · make docs · make fmt
SHELL := /bin/bash
# The 3-node cluster tests run by themselves after the rest: they time failovers and cold starts, and on 2 cores a
# neighbouring test file starves their three servers.
SOLO_TESTS = test/cluster.test.ts test/vault-control-plane.test.ts
TESTS = $(filter-out $(SOLO_TESTS),$(shell find services schemas test -name '*.test.ts' | sort))

.PHONY: deps build run test typecheck bench bench-scale docs fmt

deps:
	@scripts/install-deps.sh

# The bundles bin/* run (scripts/build.ts): dist/cli, dist/membershipd, dist/agent. Rebuilt only when a
# file they were built from is newer (bin/lib/launch.sh checks the same on every start);
# `npx tsx scripts/build.ts` rebuilds regardless.
build: deps
	@bash -c 'source bin/lib/launch.sh && bundles_ensure "$$PWD"'

run: build
	@scripts/run.sh

typecheck: deps
	npx tsc --noEmit

test: build
	npx tsc --noEmit
	npx biome ci --colors=off --diagnostic-level=error .
	scripts/lint-shell.sh
	npx tsx --test --test-concurrency=2 $(TESTS)
	npx tsx --test $(SOLO_TESTS)

bench: deps
	npx tsx bench/run.ts

# 10,000 simulated agents against one membershipd (bench/scale/run.ts); writes its section of docs/benchmarks.md.
bench-scale: build
	npx tsx bench/scale/run.ts

docs: deps
	npx tsx scripts/gen-docs.ts

# Biome formats and lints every .ts file (biome.jsonc); make test checks what this writes.
fmt: deps
	npx biome format --write .
	npx biome lint .
