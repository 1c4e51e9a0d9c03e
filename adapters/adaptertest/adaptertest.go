// Package adaptertest forwards to the shared adapter test suite, which now
// lives in the core module as github.com/datasole/datasole-go/datasole/adaptertest
// so that no module users depend on requires a test-only module.
//
// Deprecated: import github.com/datasole/datasole-go/datasole/adaptertest.
// This module goes away once no adapter's tests import it.
package adaptertest

import "github.com/datasole/datasole-go/datasole/adaptertest"

// The names of the suite, unchanged.
const (
	AppRoute     = adaptertest.AppRoute
	AppBody      = adaptertest.AppBody
	NotFoundBody = adaptertest.NotFoundBody
	UserHeader   = adaptertest.UserHeader
	RolesHeader  = adaptertest.RolesHeader
	UserKey      = adaptertest.UserKey
	SkipHeader   = adaptertest.SkipHeader
)

type (
	// Identity is adaptertest.Identity.
	Identity = adaptertest.Identity
	// Setup is adaptertest.Setup.
	Setup = adaptertest.Setup
	// Harness is adaptertest.Harness.
	Harness = adaptertest.Harness
)

var (
	// Core is adaptertest.Core.
	Core = adaptertest.Core
	// IdentityFrom is adaptertest.IdentityFrom.
	IdentityFrom = adaptertest.IdentityFrom
	// PrincipalOf is adaptertest.PrincipalOf.
	PrincipalOf = adaptertest.PrincipalOf
	// Run is adaptertest.Run.
	Run = adaptertest.Run
	// BenchRPC is adaptertest.BenchRPC.
	BenchRPC = adaptertest.BenchRPC
)
