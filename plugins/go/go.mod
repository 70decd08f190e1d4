// The Go example plugins: one main package per directory, each built by
// plugins/build.sh go into dist/<directory>.wasm. The SDK is the module at
// plugin-sdk/go, used in place (no download).
module switchyard-plugins

go 1.24

require switchyard v0.0.0

replace switchyard => ../../plugin-sdk/go
