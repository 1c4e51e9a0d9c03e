module github.com/datasole/datasole-go/e2e/auth

go 1.26.0

require (
	github.com/datasole/datasole-go/adapters/echo v0.1.0
	github.com/datasole/datasole-go/adapters/stdlib v0.1.0
	github.com/datasole/datasole-go/auth/cookie v0.1.0
	github.com/datasole/datasole-go/auth/jwt v0.1.0
	github.com/datasole/datasole-go/auth/mtls v0.1.0
	github.com/datasole/datasole-go/datasole v0.1.0
)

replace (
	github.com/datasole/datasole-go/adapters/echo => ../../adapters/echo
	github.com/datasole/datasole-go/adapters/stdlib => ../../adapters/stdlib
	github.com/datasole/datasole-go/auth/cookie => ../../auth/cookie
	github.com/datasole/datasole-go/auth/jwt => ../../auth/jwt
	github.com/datasole/datasole-go/auth/mtls => ../../auth/mtls
	github.com/datasole/datasole-go/datasole => ../../datasole
)
