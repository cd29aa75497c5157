# The two commands a new machine needs: `make test` and `make bench`.
# Each installs the pinned dependencies (npm ci) and builds first.
NODE_MODULES_STAMP := node_modules/.package-lock.json

.PHONY: all install build test bench bench-quick soak clean redis-server

all: build

install: $(NODE_MODULES_STAMP)

$(NODE_MODULES_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund

build: install
	npm run build

# The Redis cluster tests (and the two-node bench) spawn their own redis-server
# on a free loopback port; this only makes sure the binary is there. Debian's
# package may start a service on 6379: nothing here uses it.
redis-server:
	@if ! command -v redis-server >/dev/null 2>&1; then \
		echo "redis-server not found: installing Debian's redis-server package"; \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server; \
	fi

test: build redis-server
	npm test

bench: build redis-server
	node dist/bench/run.js

bench-quick: build redis-server
	node dist/bench/run.js --quick

# The churn test at full count: 1,000,000 connect/join/leave/disconnect cycles.
soak: build
	CHURN_CYCLES=1000000 node --test dist/test/churn.test.js

clean:
	rm -rf dist node_modules
