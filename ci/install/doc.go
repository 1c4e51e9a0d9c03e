// Package install checks that the repository's modules install the way users
// install them: from a module proxy, at a version, into a module of their
// own, with no go.work and no replace lines.
//
// TestInstall publishes every released module (scripts/release.sh -list) at
// the version the go.mod files require of each other into a file:// module
// proxy in a temporary directory, then, with GOWORK=off and that proxy first
// in GOPROXY, builds and runs outside the repository:
//
//   - an app (testdata/app) that uses only `go get`: gin, the JWT auth handler,
//     the Redis backend and `go run …/cmd/datasole@version gen ts`, answering
//     one RPC from a Go client that authenticates with a JWT;
//   - each framework demo (demos/gin, echo, fiber, stdlib) copied into an empty
//     module, built and tested there.
//
// It fails when a go.mod requires a sibling module at v0.0.0 or at any version
// other than the common one, since a module proxy cannot serve that. Without a
// Redis server (DATASOLE_TEST_REDIS) the app is skipped, unless CI=true.
//
// Third-party modules come from the machine's module cache (used as a file://
// proxy) and then from its usual GOPROXY; the build cache is shared, so a run
// after the first mostly links.
package install
