// Package web holds the demo page shared by every framework demo.
package web

import "embed"

// FS is the demo page: index.html, app.js, app.css and contract.ts.
//
//go:embed index.html app.js app.css contract.ts
var FS embed.FS
