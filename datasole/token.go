package datasole

import (
	"net/http"
	"strings"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// TokenProtocolPrefix starts the WebSocket subprotocol entry that carries a
// bearer credential outside the URL: a client offers
// "datasole.token.<token>" after its protocol entries
// ("datasole.v1", "datasole.batch.v1"). The server never selects such an
// entry, so the credential is not echoed in the handshake response.
const TokenProtocolPrefix = protocol.SubprotocolTokenPrefix

// RequestToken returns the bearer credential of an upgrade request, looked
// up in this order:
//
//  1. the Authorization header with the Bearer scheme (native clients);
//  2. a Sec-WebSocket-Protocol entry "datasole.token.<token>" (our browser
//     and Go clients, which keeps the token out of URLs and access logs);
//  3. the query parameter "token" (the stock v1 browser client).
//
// It returns "" when the request carries none of them. Auth handlers for
// bearer tokens (dsjwt, Tickets) use it, so every client reaches them the
// same way.
func RequestToken(r *http.Request) string {
	if t := bearerToken(r.Header.Get("Authorization")); t != "" {
		return t
	}
	if t := ProtocolToken(r); t != "" {
		return t
	}
	return strings.TrimSpace(r.URL.Query().Get("token"))
}

// ProtocolToken returns the token of the first Sec-WebSocket-Protocol entry
// that starts with TokenProtocolPrefix, or "" when there is none.
func ProtocolToken(r *http.Request) string {
	for _, line := range r.Header.Values("Sec-WebSocket-Protocol") {
		for entry := range strings.SplitSeq(line, ",") {
			if t, ok := strings.CutPrefix(strings.TrimSpace(entry), TokenProtocolPrefix); ok && t != "" {
				return t
			}
		}
	}
	return ""
}

// bearerToken extracts the credentials of the Bearer scheme (RFC 6750
// §2.1) from an Authorization header value; any other scheme yields "".
func bearerToken(v string) string {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(cred)
}
