module github.com/datasole/datasole-go/adapters/stdlib

go 1.26

require github.com/datasole/datasole-go/datasole v0.1.0

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/klauspost/compress v1.20.4 // indirect
)

require (
	github.com/tidwall/gjson v1.18.0 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.1 // indirect
	github.com/tidwall/sjson v1.2.5 // indirect
	github.com/wI2L/jsondiff v0.7.1 // indirect
	go.uber.org/goleak v1.3.0
)

replace github.com/datasole/datasole-go/datasole => ../../datasole
