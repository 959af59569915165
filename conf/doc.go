// Package conf owns Junction's configuration: the Config value, its defaults,
// loading from a TOML file, environment variables and command-line flags, and
// validation.
//
// The defaults live in default.toml, embedded in the binary; that file is also
// the commented example of every key. Load layers, lowest to highest: defaults,
// the file given with --config (or JUNCTION_CONFIG), environment variables,
// flags. Decoding is strict: a key the file may not hold is an error naming
// it. Validate reports every invalid value at once, each as an *Error naming
// its key.
//
// Components receive their sub-struct (Config.Router, Config.Storage, ...) and
// never read files or environment variables themselves. There is no reload:
// a Config is read once at start.
//
// conf imports only the standard library and the TOML decoder
// (github.com/BurntSushi/toml); deps_test.go at the module root enforces it.
package conf
