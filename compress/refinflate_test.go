package compress

import "github.com/networkcluster/networkcluster/internal/testdeflate"

// refResult is what the reference inflater made of one message.
type refResult struct {
	out     []byte // the message
	maxDist int    // the furthest back-reference
}

// refDecodeMessage decodes one permessage-deflate payload as RFC 7692
// §7.2.2 says (append 00 00 ff ff, inflate) with the strict reference
// inflater of internal/testdeflate, which shares no code or table with
// this package. It holds only hist as the peer's window, sets no output
// limit, and requires the message to end at the empty stored block: a
// Compressor never sets BFINAL. The result is never nil.
func refDecodeMessage(payload, hist []byte) (*refResult, error) {
	out, maxDist, err := testdeflate.Inflate(hist, payload, testdeflate.Options{})
	return &refResult{out: out, maxDist: maxDist}, err
}
