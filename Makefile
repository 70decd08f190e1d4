# The two commands of the README, and what they need.
#   make run    the daemon with router.toml and the example plugins
#   make test   the whole test suite
.PHONY: run test plugins toolchains

toolchains:
	plugins/install-toolchains.sh

plugins: toolchains
	plugins/build.sh

run: plugins
	cargo run --release -p switchyard -- run --config router.toml

# The integration tests run twice: on the default disk queue, then on the
# memory queue (SWITCHYARD_TEST_QUEUE, see host/tests/it/harness.rs; issue 12).
test: plugins
	python3 -m unittest discover -s plugin-sdk/python/tests
	cargo test --workspace --locked
	SWITCHYARD_TEST_QUEUE=memory cargo test -p switchyard --locked --test it
	cargo test --manifest-path plugins/Cargo.toml --locked
	plugins/build.sh --test go
