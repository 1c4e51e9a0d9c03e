package dsmtls

import (
	"errors"
	"strings"
)

var errBadElements = errors.New("malformed certificate header")

// pair is one key=value of an element; keys are lower-cased.
type pair struct{ key, value string }

// parseElements parses the list syntax shared by Envoy's
// X-Forwarded-Client-Cert and Traefik's X-Forwarded-Tls-Client-Cert-Info:
// elements separated by ",", each a ";"-separated list of key=value pairs.
// Values containing ",", ";" or "=" are double-quoted, with \" for a quote
// and any other backslash kept as it is.
// Keys are case-insensitive.
func parseElements(s string) ([][]pair, error) {
	var (
		out  [][]pair
		elem []pair
	)
	for i := 0; i < len(s); {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		eq := strings.IndexAny(s[i:], "=;,\"")
		if eq < 0 || s[i+eq] != '=' {
			return nil, errBadElements
		}
		key := strings.ToLower(strings.TrimSpace(s[i : i+eq]))
		if key == "" {
			return nil, errBadElements
		}
		i += eq + 1
		var val strings.Builder
		if i < len(s) && s[i] == '"' {
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				// Envoy escapes only quotes; other backslashes (as in an
				// RFC 4514 subject) are part of the value.
				if s[i] == '\\' && i+1 < len(s) && s[i+1] == '"' {
					i++
				}
				val.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errBadElements
			}
			i++ // closing quote
			if i < len(s) && s[i] != ';' && s[i] != ',' {
				return nil, errBadElements
			}
		} else {
			end := strings.IndexAny(s[i:], ";,")
			if end < 0 {
				end = len(s) - i
			}
			v := s[i : i+end]
			if strings.ContainsAny(v, "\"=") {
				return nil, errBadElements
			}
			val.WriteString(strings.TrimSpace(v))
			i += end
		}
		elem = append(elem, pair{key, val.String()})
		if i < len(s) && s[i] == ',' {
			out = append(out, elem)
			elem = nil
		}
		if i < len(s) {
			i++
			if i == len(s) { // a trailing separator leaves an empty pair
				return nil, errBadElements
			}
		}
	}
	if len(elem) == 0 {
		return nil, errBadElements
	}
	return append(out, elem), nil
}

// xfcc is one element of Envoy's X-Forwarded-Client-Cert.
type xfcc struct {
	hash, cert, subject string
	uris, dns           []string
}

func xfccOf(elem []pair) xfcc {
	var x xfcc
	for _, p := range elem {
		switch p.key {
		case "hash":
			x.hash = p.value
		case "cert":
			x.cert = p.value
		case "subject":
			x.subject = p.value
		case "uri":
			x.uris = append(x.uris, p.value)
		case "dns":
			x.dns = append(x.dns, p.value)
		}
	}
	return x
}
