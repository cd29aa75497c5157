# The two commands a new machine needs: `make test` and `make bench`.
# Each installs the pinned dependencies (npm ci) and builds first.
NODE_MODULES_STAMP := node_modules/.package-lock.json

.PHONY: all install build test bench bench-quick soak clean

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

# The churn test at full count: 1,000,000 connect/join/leave/disconnect cycles.
soak: build
	CHURN_CYCLES=1000000 node --test dist/test/churn.test.js

clean:
	rm -rf dist node_modules
