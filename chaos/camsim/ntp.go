package camsim

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// ntpEpochOffset is the seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const ntpEpochOffset = 2208988800

// NTPTimestamp encodes t as a 64-bit NTP timestamp (RFC 3550 section 4):
// seconds since 1900 in the high 32 bits, the fraction of a second in units
// of 2^-32 s in the low 32 bits.
func NTPTimestamp(t time.Time) uint64 {
	ns := t.UnixNano()
	sec := uint64(ns/1e9) + ntpEpochOffset
	frac := (uint64(ns%1e9) << 32) / 1e9
	return sec<<32 | frac
}

// NTPTime decodes a 64-bit NTP timestamp (RFC 3550) into a time.
func NTPTime(v uint64) time.Time {
	sec := int64(v>>32) - ntpEpochOffset
	ns := (int64(v&0xFFFFFFFF)*1e9 + 1<<31) >> 32
	return time.Unix(sec, ns)
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return binary.BigEndian.Uint32(b[:])
}
