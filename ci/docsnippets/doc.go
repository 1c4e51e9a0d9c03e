// Package docsnippets compiles every Go code block of the documentation
// (README.md and docs/**/*.md) against the repository's modules, so that a
// snippet that no longer matches the API fails the tests:
//
//	go test ./docsnippets   (in ci/)
//
// # For doc writers
//
// Write Go blocks as ```go fences. Each block becomes a program of its own,
// type-checked and vetted (go vet) in a workspace of the repository's
// modules; errors point at the page and line of the block. What a block may
// be:
//
//   - A whole file: it starts with a package clause. A block `package main`
//     is compiled as it is. A block with another package name becomes a
//     package that the blocks of every page use by that name: the contract of
//     getting-started.md is `contract` everywhere (contract.Add,
//     contract.AddParams, contract.ChatSend, contract.DashboardKey, …).
//   - Declarations (func, type, var, const, import): compiled at package level
//     of a main package.
//   - Statements: compiled as the body of func main. Top-level `func`, method and
//     `type` declarations among them (starting at column 0) are moved out to
//     package level, so a block may show a helper next to the code using it.
//     Variables a block declares and does not use are fine (the reader uses
//     them); a leading import block is fine too.
//
// Imports are added for the packages a block uses, from the block's own
// import lines, the page's prelude (below) and a table of the usual names
// (datasole, client, dsgin, gin, echo, fiber, http, json, time, …; see
// knownImports). Every fragment also sees these variables, as if the page
// had declared them before: ctx (context.Context), ds (*datasole.Server),
// r (*gin.Engine), e (*echo.Echo), app (*fiber.App) and mux
// (*http.ServeMux). Write `/* … */` rather than a bare `…` for code left out.
//
// Anything else a page's blocks assume — the app's own handler, a key, a
// claims type — goes in a prelude: an HTML comment, invisible on the
// rendered page, holding Go declarations (and imports) that every fragment
// of that page is compiled with:
//
//	<!-- go:prelude
//	import "github.com/gin-contrib/cors"
//	var hello gin.HandlerFunc
//	type MyClaims struct{ Subject string; Roles []string }
//	-->
//
// A marker comment on the line right before a fence changes how that block
// is compiled:
//
//	<!-- go:main -->          statements, even if they start like declarations
//	<!-- go:decls -->         declarations
//	<!-- go:skip: reason -->  not compiled; say why (not Go, output, pseudo-code)
package docsnippets
