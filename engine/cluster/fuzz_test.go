package cluster

import (
	"testing"

	"github.com/understudy-nvr/understudy/engine/catalog"
)

func FuzzDecodeMeta(f *testing.F) {
	b, _ := EncodeMeta(Meta{ID: "n1", Domain: "rack", APIAddress: "10.0.0.1:8080", Version: "v1", Weight: 5, State: StateDraining})
	f.Add(b)
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		enc, err := EncodeMeta(m)
		if err != nil {
			t.Fatalf("decoded meta does not encode: %v", err)
		}
		if string(enc) != string(b) {
			t.Fatalf("encoding not canonical")
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	f.Add(EncodeState([]catalog.Entry{{ID: "a", Version: catalog.Version{WallMS: 1e12, Node: "n1"}, Deleted: true}}))
	f.Add(EncodeState(nil))
	f.Add([]byte{1, 5, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, newer, err := DecodeState(b)
		if err != nil || newer > 0 {
			return
		}
		if string(EncodeState(entries)) != string(b) {
			t.Fatalf("state does not re-encode to its input")
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(EncodeBatch([][]byte{encodeEntryMsg(catalog.Entry{ID: "a", Version: catalog.Version{WallMS: 1e12, Node: "n1"}, Deleted: true}), EncodeStatus("n1", Status{Seq: 1})}))
	f.Add([]byte{msgBatch, 1, msgBatch})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := DecodeBatch(b)
		if err != nil {
			return
		}
		for _, m := range msgs {
			if len(m) == 0 || m[0] == msgBatch {
				t.Fatalf("decoded an empty or nested message")
			}
		}
		if string(EncodeBatch(msgs)) != string(b) {
			t.Fatalf("batch does not re-encode to its input")
		}
	})
}

func FuzzDecodeStatus(f *testing.F) {
	f.Add(EncodeStatus("n1", Status{Seq: 3, Digest: 9, Missing: []string{"cam-1"}, Home: 2, CPUPercent: 3.5}))
	f.Add([]byte{msgStatus, statusFormatV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		node, s, err := DecodeStatus(b)
		if err != nil {
			return
		}
		if enc := EncodeStatus(node, s); len(enc) > MaxStatusSize {
			t.Fatalf("decoded status re-encodes to %d bytes", len(enc))
		}
	})
}
