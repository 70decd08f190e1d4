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

test: plugins
	python3 -m unittest discover -s plugin-sdk/python/tests
	cargo test --workspace --locked
	cargo test --manifest-path plugins/Cargo.toml --locked
	plugins/build.sh --test go
