package load

import (
	"fmt"
	"strings"
)

// Params returns the JSON params of an echo call of about size bytes: a
// string for small sizes, else a list of records shaped like application
// data (so that compression sees realistic text, not one repeated byte).
func Params(size int) []byte {
	if size < 64 {
		return []byte(`"` + strings.Repeat("x", max(size-2, 0)) + `"`)
	}
	names := []string{"ada", "linus", "grace", "ken", "barbara", "edsger", "margaret", "dennis"}
	words := []string{"order", "shipped", "pending", "refund", "invoice", "customer", "priority", "express"}
	b := []byte(`{"rows":[`)
	for i := 0; ; i++ {
		rec := fmt.Sprintf(`{"id":%d,"name":"%s","email":"%s%d@example.com","score":%d.%02d,"note":"%s %s %s"}`,
			100000+i*7919%900000, names[i%len(names)], names[(i*3)%len(names)], i*37%1000,
			i*53%100, i*17%100, words[i%len(words)], words[(i*5)%len(words)], words[(i*7+1)%len(words)])
		if i > 0 && len(b)+1+len(rec)+2 > size {
			break
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, rec...)
	}
	return append(b, "]}"...)
}
