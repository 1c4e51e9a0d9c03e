package protocol_test

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/datasole/datasole-go/datasole/protocol"
)

func ExampleEncode() {
	small, _ := protocol.Encode(protocol.Pong, 7, protocol.PongPayload)
	fmt.Printf("PONG: %d bytes, compressed %v: % x\n", len(small), protocol.IsCompressed(small), small)

	// Frames longer than 256 bytes travel zlib-compressed.
	big, _ := json.Marshal(protocol.Event{Event: "pad", Data: json.RawMessage(`"` + strings.Repeat("x", 300) + `"`)})
	msg, _ := protocol.Encode(protocol.EventS2C, 0, big)
	f, _ := protocol.Decode(msg)
	fmt.Printf("EVENT_S2C: %d-byte frame, compressed %v, first byte %#x, decodes to %d payload bytes\n",
		protocol.HeaderSize+len(big), protocol.IsCompressed(msg), msg[0], len(f.Payload))
	// Output:
	// PONG: 13 bytes, compressed false: 08 00 00 00 07 00 00 00 04 6e 75 6c 6c
	// EVENT_S2C: 334-byte frame, compressed true, first byte 0x78, decodes to 325 payload bytes
}

func ExampleDecode() {
	// An RPC_REQ as the stock browser client sends it.
	msg := []byte("\x01\x00\x00\x00\x01\x00\x00\x00\x39" + `{"method":"add","params":{"a":2,"b":3},"correlationId":1}`)
	f, err := protocol.Decode(msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	var req protocol.RPCRequest
	if err := json.Unmarshal(f.Payload, &req); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f.Opcode, f.CorrelationID, req.Method, string(req.Params))

	// Malformed messages fail with a classified error.
	_, err = protocol.Decode([]byte{0x0c, 0, 0, 0, 1, 0, 0, 0, 0})
	fmt.Println(err)
	// Output:
	// RPC_REQ 1 add {"a":2,"b":3}
	// datasole protocol: unknown-opcode
}

func ExampleAppendFrame() {
	// Reusing buf makes encoding allocation-free.
	buf := make([]byte, 0, 512)
	for id := uint32(1); id <= 2; id++ {
		buf, _ = protocol.AppendFrame(buf[:0], protocol.Ping, id, []byte("null"))
		fmt.Printf("% x\n", buf)
	}
	// Output:
	// 07 00 00 00 01 00 00 00 04 6e 75 6c 6c
	// 07 00 00 00 02 00 00 00 04 6e 75 6c 6c
}
