// Package dscookie authenticates datasole upgrade requests with a signed,
// optionally encrypted, session cookie built on github.com/gorilla/securecookie.
//
// The cookie carries the principal itself (user id, roles, metadata), signed
// with HMAC-SHA256 and, when a block key is configured, encrypted with AES.
// Its age is bound into the signature, so [Options.MaxAge] holds even when a
// client keeps the cookie longer than its Max-Age attribute says. Keys rotate:
// [Options.Keys] lists the current key first and previous keys after it;
// cookies signed with any of them are accepted, new ones use the first.
//
// The principal's ExpiresAt is when the cookie stops being accepted (its
// signed timestamp plus MaxAge): the server closes the connection then, with
// close code 4001, so a connection never outlives its cookie.
//
// # Sessions in a store
//
// A cookie that carries the principal cannot be revoked, and its roles
// cannot change, until it expires. With [Options.Lookup] the cookie carries
// only a session id, and every upgrade reads the principal from the app's
// store. [Store] is a ready-made store over a datasole backend (so every node
// sees the same sessions) with revocation: [Store.Revoke] deletes the
// session, so its cookie is refused (401), and closes its open connections
// with close code 4003 on every node.
//
//	store, _ := dscookie.NewStore(dscookie.StoreOptions{Backend: b, TTL: 12 * time.Hour})
//	sess, _ := dscookie.NewSession(dscookie.Options{Keys: keys, MaxAge: 12 * time.Hour, Lookup: store.Lookup})
//	ds, _ := datasole.New(datasole.Options{Backend: b, Auth: sess.Authenticate})
//	store.Attach(ctx, ds)
//	// login:  id, _ := store.Create(ctx, principal); sess.IssueID(w, id)
//	// logout: id, _ := sess.SessionID(r); store.Revoke(ctx, id); sess.Clear(w)
//
// # Getting the credential from a browser
//
// Browsers send cookies on the WebSocket upgrade by themselves. Set the cookie
// from the app's login handler on the same site as the datasole endpoint:
//
//	sess, _ := dscookie.NewSession(opts)
//	// net/http
//	err := sess.Issue(w, &datasole.Principal{UserID: "u1", Roles: []string{"admin"}})
//	// gin
//	err := sess.Issue(c.Writer, principal)
//	// echo
//	err := sess.Issue(c.Response(), principal)
//	// logout: sess.Clear(w), sess.Clear(c.Writer), sess.Clear(c.Response())
//
// Fiber does not use net/http's ResponseWriter, and this module does not import
// fiber. Encode the value and set it with fiber's own cookie type, repeating
// the attributes of your Options:
//
//	name, value, err := sess.Encode(principal)
//	c.Cookie(&fiber.Cookie{Name: name, Value: value, Path: "/", MaxAge: 86400,
//		HTTPOnly: true, Secure: true, SameSite: fiber.CookieSameSiteLaxMode})
//	// logout
//	c.Cookie(&fiber.Cookie{Name: name, Path: "/", Expires: time.Unix(0, 0),
//		HTTPOnly: true, Secure: true, SameSite: fiber.CookieSameSiteLaxMode})
//
// # Security
//
// Cookies are sent with every request to the site, including WebSocket
// upgrades started by pages on other origins: SameSite=Lax does not cover
// WebSocket handshakes in every browser. Cookie authentication therefore
// requires the datasole server's Origin check to stay on, or any web page a
// logged-in user visits can open a socket as that user (cross-site WebSocket
// hijacking).
//
// The defaults are HttpOnly, Secure, SameSite=Lax and Path=/. A "__Host-"
// name prefix (e.g. "__Host-datasole") additionally stops sibling subdomains
// from planting the cookie; [NewSession] checks that such a name is used with
// the attributes the prefix needs.
package dscookie
