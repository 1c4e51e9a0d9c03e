// Package browser holds the end-to-end tests of the datasole browser client
// against Go servers in headless Chromium (driven with chromedp): the interop
// fixture as a real process and in-process servers for the scenarios that
// need a special configuration or a restart. The tests skip when Chromium is
// missing, and fail then when CI=true; scripts/chromium.sh installs it.
//
//	eval "$(bash scripts/chromium.sh)"
//	cd e2e/browser && go test -race ./...
//
// With DATASOLE_UPDATE_SCREENSHOT=1 the demo test rewrites docs/demo.png.
package browser
