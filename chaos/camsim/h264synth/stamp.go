package h264synth

import (
	"bytes"
	"encoding/binary"
	"time"
)

// Stamp identifies one synthetic frame. It travels in an SEI
// user_data_unregistered message at the head of every access unit.
type Stamp struct {
	// Camera is the camera number.
	Camera uint32
	// Frame is the frame sequence number of the camera.
	Frame uint64
	// Time is the wall-clock time of the frame (nanosecond precision).
	Time time.Time
}

// StampUUID is the uuid_iso_iec_11578 of the SEI message carrying a Stamp.
var StampUUID = [16]byte{'u', 'n', 'd', 'e', 'r', 's', 't', 'u', 'd', 'y', '-', 'c', 'a', 'm', 's', 'm'}

const (
	stampPayload = 16 + 4 + 8 + 8
	// seiSize bounds the escaped SEI NAL unit: header, payload type and
	// size, payload, trailing bits, and up to one escape per 3 bytes.
	seiSize = 1 + 2 + stampPayload + 1 + stampPayload/3 + 1
)

// appendSEI appends the SEI NAL unit carrying st to dst.
func appendSEI(dst []byte, st Stamp) []byte {
	var rbsp [2 + stampPayload + 1]byte
	rbsp[0] = 5 // payloadType: user_data_unregistered
	rbsp[1] = stampPayload
	copy(rbsp[2:], StampUUID[:])
	binary.BigEndian.PutUint32(rbsp[18:], st.Camera)
	binary.BigEndian.PutUint64(rbsp[22:], st.Frame)
	binary.BigEndian.PutUint64(rbsp[30:], uint64(st.Time.UnixNano()))
	rbsp[38] = 0x80 // rbsp_trailing_bits
	dst = append(dst, nalHeader(0, naluSEI))
	return EmulationPrevent(dst, rbsp[:])
}

// ParseStamp reads the Stamp of an SEI NAL unit written by this package.
// It returns false for any other NAL unit.
func ParseStamp(nalu []byte) (Stamp, bool) {
	if len(nalu) < 3 || nalu[0]&0x1F != naluSEI {
		return Stamp{}, false
	}
	rbsp := EmulationRemove(nalu[1:])
	if len(rbsp) < 2+stampPayload || rbsp[0] != 5 || rbsp[1] != stampPayload ||
		!bytes.Equal(rbsp[2:18], StampUUID[:]) {
		return Stamp{}, false
	}
	return Stamp{
		Camera: binary.BigEndian.Uint32(rbsp[18:]),
		Frame:  binary.BigEndian.Uint64(rbsp[22:]),
		Time:   time.Unix(0, int64(binary.BigEndian.Uint64(rbsp[30:]))),
	}, true
}

// FindStamp returns the Stamp of the first stamped NAL unit of an access unit.
func FindStamp(au [][]byte) (Stamp, bool) {
	for _, n := range au {
		if st, ok := ParseStamp(n); ok {
			return st, true
		}
	}
	return Stamp{}, false
}
