package dsmtls

import (
	"crypto/x509/pkix"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

var errBadDN = errors.New("malformed distinguished name")

// parseDN parses an RFC 4514 (RFC 2253) distinguished name such as nginx's
// $ssl_client_s_dn or Envoy's Subject into the attributes pkix.Name knows.
// Attributes of other types are skipped; hex-encoded (#…) values are refused
// because no supported attribute needs them.
func parseDN(s string) (pkix.Name, error) {
	var n pkix.Name
	if strings.TrimSpace(s) == "" {
		return n, errBadDN
	}
	for i := 0; ; {
		// attribute type
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			return n, errBadDN
		}
		typ := strings.TrimSpace(s[i : i+eq])
		if typ == "" {
			return n, errBadDN
		}
		i += eq + 1
		for i < len(s) && s[i] == ' ' {
			i++
		}
		// attribute value
		var val []byte
		trail := 0 // unescaped trailing spaces, which RFC 4514 drops
		switch {
		case i < len(s) && s[i] == '#':
			return n, errBadDN
		case i < len(s) && s[i] == '"': // RFC 1779 quoted value, still seen in the wild
			end := i + 1
			for ; end < len(s) && s[end] != '"'; end++ {
				if s[end] == '\\' {
					end++
				}
				if end < len(s) {
					val = append(val, s[end])
				}
			}
			if end >= len(s) {
				return n, errBadDN
			}
			i = end + 1
			for i < len(s) && s[i] == ' ' {
				i++
			}
		default:
			for i < len(s) && s[i] != ',' && s[i] != '+' && s[i] != ';' {
				c := s[i]
				if c == '\\' {
					if i+1 >= len(s) {
						return n, errBadDN
					}
					if b, err := strconv.ParseUint(safeSlice(s, i+1, i+3), 16, 8); err == nil && isHex(s[i+1]) {
						val = append(val, byte(b))
						i += 3
					} else {
						val = append(val, s[i+1])
						i += 2
					}
					trail = 0
					continue
				}
				if c == ' ' {
					trail++
				} else {
					trail = 0
				}
				val = append(val, c)
				i++
			}
			val = val[:len(val)-trail]
		}
		if !utf8.Valid(val) {
			return n, errBadDN
		}
		set(&n, typ, string(val))
		if i >= len(s) {
			return n, nil
		}
		if c := s[i]; c != ',' && c != '+' && c != ';' {
			return n, errBadDN
		}
		i++
	}
}

func safeSlice(s string, from, to int) string {
	if to > len(s) {
		return ""
	}
	return s[from:to]
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func set(n *pkix.Name, typ, v string) {
	switch strings.ToUpper(typ) {
	case "CN", "2.5.4.3":
		n.CommonName = v
	case "SERIALNUMBER", "2.5.4.5":
		n.SerialNumber = v
	case "C", "2.5.4.6":
		n.Country = append(n.Country, v)
	case "L", "2.5.4.7":
		n.Locality = append(n.Locality, v)
	case "ST", "2.5.4.8":
		n.Province = append(n.Province, v)
	case "STREET", "2.5.4.9":
		n.StreetAddress = append(n.StreetAddress, v)
	case "O", "2.5.4.10":
		n.Organization = append(n.Organization, v)
	case "OU", "2.5.4.11":
		n.OrganizationalUnit = append(n.OrganizationalUnit, v)
	case "POSTALCODE", "2.5.4.17":
		n.PostalCode = append(n.PostalCode, v)
	}
}
