module github.com/junction-broker/junction/interop

go 1.26.8

require github.com/junction-broker/junction v0.0.0

require github.com/BurntSushi/toml v1.4.0 // indirect

replace github.com/junction-broker/junction => ../
