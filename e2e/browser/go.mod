module github.com/datasole/datasole-go/e2e/browser

go 1.26.0

require (
	github.com/chromedp/chromedp v0.23.0
	github.com/datasole/datasole-go/datasole v0.1.0
	github.com/datasole/datasole-go/demos v0.1.0
	github.com/evanw/esbuild v0.28.2
	github.com/gorilla/websocket v1.5.3
)

require (
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/tidwall/gjson v1.18.0 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.1 // indirect
	github.com/tidwall/sjson v1.2.5 // indirect
	github.com/wI2L/jsondiff v0.7.1 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace (
	github.com/datasole/datasole-go/datasole => ../../datasole
	github.com/datasole/datasole-go/demos => ../../demos
)
