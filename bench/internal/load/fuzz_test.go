package load

import (
	"testing"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// FuzzParse feeds arbitrary server messages to every protocol's parser: they
// may refuse them but must not panic or report replies and pushes that the
// message does not hold.
func FuzzParse(f *testing.F) {
	res, _ := protocol.Encode(protocol.RPCRes, 7, []byte(`{"correlationId":7,"result":"x"}`))
	var bw BatchWriter
	bw.Add(res)
	bw.Add(res)
	f.Add(res)
	f.Add(bw.Take())
	f.Add([]byte("{\"id\":3,\"rpc\":{}}\n{}\n{\"push\":{\"pub\":{\"data\":{\"seq\":1,\"ts\":2}}}}"))
	f.Add(Echo{}.AppendCall(nil, 9, []byte(`"p"`)))
	f.Add([]byte{OpBatch, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x80})
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, p := range []Protocol{Echo{}, Datasole{Batch: true}, Centrifuge{}} {
			n := 0
			p.Parse(msg, func(uint32, bool) { n++ }, func(pub []byte) {
				PubFields(pub)
				n++
			})
			if n > len(msg) {
				t.Fatalf("%T reported %d replies and pushes in %d bytes", p, n, len(msg))
			}
		}
	})
}
