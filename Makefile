# make run · make test · make bench · make docs
SHELL := /bin/bash
TESTS = $(shell find services schemas test -name '*.test.ts' | sort)

.PHONY: deps run test typecheck bench docs

deps:
	@scripts/install-deps.sh

run: deps
	@scripts/run.sh

typecheck: deps
	npx tsc --noEmit

test: deps
	npx tsc --noEmit
	npx tsx --test --test-concurrency=2 $(TESTS)

bench: deps
	npx tsx bench/run.ts

docs: deps
	npx tsx scripts/gen-docs.ts
