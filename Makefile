# The two commands a new machine needs: `make test` and `make bench`.
# Each installs the pinned dependencies (npm ci) and builds first.
NODE_MODULES_STAMP := node_modules/.package-lock.json

.PHONY: all install build test bench bench-quick clean

all: build

install: $(NODE_MODULES_STAMP)

$(NODE_MODULES_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund

build: install
	npm run build

test: build
	npm test

bench: build
	node dist/bench/run.js

bench-quick: build
	node dist/bench/run.js --quick

clean:
	rm -rf dist node_modules
