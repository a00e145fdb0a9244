package engine

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// strictJSON is the Connect JSON codec without connect's default of
// discarding unknown fields: a misspelt field ("credential" for
// "credentials", "enable" for "enabled") or an unknown enum name (which
// would widen a filter to everything) is an invalid_argument error naming
// it, instead of a request that silently does something else.
// Its zero value is "json"; strictJSON{"json; charset=utf-8"} is the
// other name connect registers.
type strictJSON struct{ name string }

func (c strictJSON) Name() string {
	if c.name == "" {
		return "json"
	}
	return c.name
}

func (strictJSON) Marshal(m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a protobuf message", m)
	}
	return protojson.MarshalOptions{}.Marshal(pm)
}

// MarshalStable and IsBinary make GET requests (Connect's cacheable
// form) possible with this codec, as with connect's own.
func (c strictJSON) MarshalStable(m any) ([]byte, error) { return c.Marshal(m) }

func (strictJSON) IsBinary() bool { return false }

func (strictJSON) Unmarshal(data []byte, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a protobuf message", m)
	}
	if len(data) == 0 {
		return errors.New("zero-length payload is not a valid JSON object")
	}
	return protojson.UnmarshalOptions{}.Unmarshal(data, pm)
}
