package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
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
	err := protojson.UnmarshalOptions{}.Unmarshal(data, pm)
	if err != nil {
		if ok, werr := unmarshalWildcardMask(data, pm); ok {
			return werr
		}
	}
	return err
}

// unmarshalWildcardMask reads a request whose top-level field mask is the
// wildcard "*" (all fields, as UpdateStream documents), which protojson
// refuses as an invalid path: the rest of data is decoded, then the mask
// set to "*". ok is false when data has no such field.
func unmarshalWildcardMask(data []byte, pm proto.Message) (ok bool, err error) {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return false, nil
	}
	fields := pm.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Message() == nil || fd.Message().FullName() != "google.protobuf.FieldMask" {
			continue
		}
		for _, name := range []string{fd.JSONName(), fd.TextName()} {
			if v, found := top[name]; !found || strings.TrimSpace(string(v)) != `"*"` {
				continue
			}
			delete(top, name)
			rest, err := json.Marshal(top)
			if err != nil {
				return true, err
			}
			proto.Reset(pm)
			if err := (protojson.UnmarshalOptions{}).Unmarshal(rest, pm); err != nil {
				return true, err
			}
			pm.ProtoReflect().Set(fd, protoreflect.ValueOfMessage((&fieldmaskpb.FieldMask{Paths: []string{"*"}}).ProtoReflect()))
			return true, nil
		}
	}
	return false, nil
}
