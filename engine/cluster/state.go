package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/understudy-nvr/understudy/engine/catalog"
)

// Bounds of the push/pull state and of gossip messages.
const (
	stateFormatV1 = 1
	// MaxStateEntries bounds the entries of one push/pull state.
	MaxStateEntries = 1 << 20
	// MaxEntrySize bounds one encoded entry in a state or a message.
	MaxEntrySize = 1 << 20
	// MaxStateSize bounds a whole push/pull state.
	MaxStateSize = 256 << 20
)

// Gossip message types (first byte of a user message). msgStatus (2) is
// in status.go.
const (
	msgEntry = 1
	msgBatch = 3
)

// EncodeBatch packs gossip messages (entries and statuses) into one
// packet:
//
//	byte     msgBatch = 3
//	per message: uvarint length (≥ 1), message bytes
func EncodeBatch(msgs [][]byte) []byte {
	n := 1
	for _, m := range msgs {
		n += uvarintLen(uint64(len(m))) + len(m)
	}
	b := make([]byte, 1, n)
	b[0] = msgBatch
	for _, m := range msgs {
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	return b
}

// DecodeBatch splits what EncodeBatch packed. The messages alias b. A
// batch that is not wholly well-formed (a length past the end, an empty
// message, a batch inside a batch) is refused whole: its messages are
// not checked here, the receiver decodes each.
func DecodeBatch(b []byte) ([][]byte, error) {
	if len(b) == 0 || b[0] != msgBatch {
		return nil, errors.New("not a batch message")
	}
	var out [][]byte
	for r := b[1:]; len(r) > 0; {
		l, k := uvarint(r)
		if k <= 0 || l == 0 || l > uint64(len(r)-k) {
			return nil, fmt.Errorf("batch: message %d: bad length", len(out))
		}
		m := r[k : k+int(l)]
		if m[0] == msgBatch {
			return nil, fmt.Errorf("batch: message %d is a batch", len(out))
		}
		out = append(out, m)
		r = r[k+int(l):]
	}
	if len(out) == 0 {
		return nil, errors.New("batch: empty")
	}
	return out, nil
}

// ErrCorruptState wraps every DecodeState failure.
var ErrCorruptState = errors.New("corrupt cluster state")

// EncodeState encodes entries for push/pull (format 1):
//
//	byte     format = 1
//	uvarint  entry count (≤ MaxStateEntries)
//	per entry: uvarint length (≤ MaxEntrySize), catalog.EncodeEntry bytes
func EncodeState(entries []catalog.Entry) []byte {
	b := []byte{stateFormatV1}
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		enc := catalog.EncodeEntry(e)
		b = binary.AppendUvarint(b, uint64(len(enc)))
		b = append(b, enc...)
	}
	return b
}

// DecodeState decodes what EncodeState wrote. Any failure (including an
// entry DecodeEntry rejects) wraps ErrCorruptState; it never panics. An
// entry in a format this version does not know (a newer version wrote it)
// is left out and counted in newer, so that one new kind of record does
// not make a mixed-version cluster drop every push/pull.
func DecodeState(b []byte) (_ []catalog.Entry, newer int, _ error) {
	if len(b) > MaxStateSize {
		return nil, 0, fmt.Errorf("%w: %d bytes, more than %d", ErrCorruptState, len(b), MaxStateSize)
	}
	if len(b) == 0 || b[0] != stateFormatV1 {
		return nil, 0, fmt.Errorf("%w: unknown format", ErrCorruptState)
	}
	r := b[1:]
	n, k := uvarint(r)
	// Each entry takes at least 2 bytes, which bounds n by the input too.
	if k <= 0 || n > MaxStateEntries || n > uint64(len(r)) {
		return nil, 0, fmt.Errorf("%w: bad entry count", ErrCorruptState)
	}
	r = r[k:]
	out := make([]catalog.Entry, 0, n)
	for i := range n {
		l, k := uvarint(r)
		if k <= 0 || l > MaxEntrySize || l > uint64(len(r)-k) {
			return nil, 0, fmt.Errorf("%w: entry %d: bad length", ErrCorruptState, i)
		}
		e, err := catalog.DecodeEntry(r[k : k+int(l)])
		if errors.Is(err, catalog.ErrUnknownFormat) {
			newer++
			r = r[k+int(l):]
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%w: entry %d: %v", ErrCorruptState, i, err)
		}
		out = append(out, e)
		r = r[k+int(l):]
	}
	if len(r) != 0 {
		return nil, 0, fmt.Errorf("%w: %d trailing bytes", ErrCorruptState, len(r))
	}
	return out, newer, nil
}

// encodeEntryMsg is a gossip message carrying one entry.
func encodeEntryMsg(e catalog.Entry) []byte {
	return append([]byte{msgEntry}, catalog.EncodeEntry(e)...)
}

// uvarint is binary.Uvarint that also rejects a non-minimal encoding
// (k <= 0), so every value has one encoding.
func uvarint(b []byte) (uint64, int) {
	v, k := binary.Uvarint(b)
	if k > 0 && k != uvarintLen(v) {
		return 0, -1
	}
	return v, k
}

func uvarintLen(v uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], v)
}
