module github.com/datasole/datasole-go/auth/jwt

go 1.26

require (
	github.com/MicahParks/jwkset v0.11.4
	github.com/datasole/datasole-go/datasole v0.1.0
	github.com/golang-jwt/jwt/v5 v5.3.1
)

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	golang.org/x/time v0.15.0 // indirect
)

replace github.com/datasole/datasole-go/datasole => ../../datasole
