package compress_test

import (
	"errors"
	"fmt"

	"github.com/networkcluster/networkcluster/compress"
)

// A server negotiates with a browser's offer and compresses a message; the
// client inflates it.
func Example() {
	preset := compress.DedicatedCompressor4KB | compress.DedicatedDecompressor

	// Server: the offer from the upgrade request.
	offers, err := compress.ParseOffers([]string{"permessage-deflate; client_max_window_bits"})
	if err != nil {
		panic(err) // a real server answers 400 Bad Request
	}
	resp, ok := preset.Accept(offers)
	fmt.Println(ok, resp)
	server := compress.NewConfig(preset, resp, true)

	// Client: what it learns from the response header.
	client := compress.NewConfig(compress.DedicatedDecompressor, resp, false)

	c := compress.NewCompressor(server)
	defer c.Release()
	d := compress.NewDecompressor(client)
	defer d.Release()

	msg := []byte(`{"job":42,"status":"done","result":"ok"} {"job":43,"status":"done","result":"ok"}`)
	payload, _ := c.Compress(nil, msg) // send in a frame with RSV1 set
	out, err := d.Decompress(nil, payload, 1<<20)
	fmt.Println(len(msg), "→", len(payload), "bytes;", string(out) == string(msg), err)
	// Output:
	// true permessage-deflate; server_max_window_bits=9
	// 81 → 48 bytes; true <nil>
}

// A client offers, then checks the server's response.
func ExamplePreset_CheckResponse() {
	preset := compress.SharedCompressor | compress.DedicatedDecompressor4KB
	offer := preset.Offer()
	fmt.Println(offer)

	resp, ok, err := compress.ParseResponse([]string{"permessage-deflate; server_max_window_bits=12; client_no_context_takeover"})
	if err == nil && ok {
		err = preset.CheckResponse(offer, resp)
	}
	fmt.Println(err)

	// A server that ignores our window limit: the client fails the connection.
	resp, _, _ = compress.ParseResponse([]string{"permessage-deflate"})
	fmt.Println(errors.Is(preset.CheckResponse(offer, resp), compress.ErrNegotiation))
	// Output:
	// permessage-deflate; client_no_context_takeover; server_max_window_bits=12
	// <nil>
	// true
}

func ExampleParsePreset() {
	p, err := compress.ParsePreset("SHARED_COMPRESSOR|DEDICATED_DECOMPRESSOR")
	fmt.Println(uint32(p), p, err)
	p, err = compress.ParsePreset("146")
	fmt.Println(p, err)
	_, err = compress.ParsePreset("DEDICATED_COMPRESSOR_5KB")
	fmt.Println(err)
	// Output:
	// 3841 SHARED_COMPRESSOR|DEDICATED_DECOMPRESSOR_32KB <nil>
	// DEDICATED_COMPRESSOR_4KB <nil>
	// compress: invalid preset: unknown name "DEDICATED_COMPRESSOR_5KB"
}

// One compression of a broadcast serves every receiver; a connection whose
// own compressor keeps context records the message with Observe.
func ExampleCompressor_Observe() {
	shared := compress.NewCompressor(compress.Config{}) // no context takeover
	conn := compress.NewCompressor(compress.Config{CompressContextTakeover: true})
	defer conn.Release()

	msg := []byte("price update: ABC 12.5, DEF 7.25, GHI 99.0")
	payload, _ := shared.Compress(nil, msg) // sent to every subscriber
	conn.Observe(msg)                       // this subscriber's peer now has msg in its window

	peer := compress.NewDecompressor(compress.Config{DecompressContextTakeover: true})
	out1, _ := peer.Decompress(nil, payload, 1<<20)
	next, _ := conn.Compress(nil, msg) // may refer back to the broadcast
	out2, err := peer.Decompress(nil, next, 1<<20)
	fmt.Println(string(out1) == string(msg), string(out2) == string(msg), len(next) < len(payload), err)
	// Output: true true true <nil>
}
