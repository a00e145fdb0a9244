package understudyv1_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// These tests pin the contract other parts of Understudy (engine, scripts,
// the CLI) rely on: the services and their methods as registered at run
// time, the exact field names of the messages scripts read, and the enum
// values. A rename in a .proto file fails here, not in a script at 3 a.m.

type method struct {
	name, in, out string
	serverStream  bool
	procedure     string // the connect constant, to tie the generated code to the descriptor
}

var services = map[string][]method{
	"understudy.v1.StreamService": {
		{"CreateStream", "CreateStreamRequest", "CreateStreamResponse", false, understudyv1connect.StreamServiceCreateStreamProcedure},
		{"GetStream", "GetStreamRequest", "GetStreamResponse", false, understudyv1connect.StreamServiceGetStreamProcedure},
		{"ListStreams", "ListStreamsRequest", "ListStreamsResponse", false, understudyv1connect.StreamServiceListStreamsProcedure},
		{"UpdateStream", "UpdateStreamRequest", "UpdateStreamResponse", false, understudyv1connect.StreamServiceUpdateStreamProcedure},
		{"DeleteStream", "DeleteStreamRequest", "DeleteStreamResponse", false, understudyv1connect.StreamServiceDeleteStreamProcedure},
	},
	"understudy.v1.RecordingService": {
		{"GetTimeline", "GetTimelineRequest", "GetTimelineResponse", false, understudyv1connect.RecordingServiceGetTimelineProcedure},
		{"ListSegments", "ListSegmentsRequest", "ListSegmentsResponse", false, understudyv1connect.RecordingServiceListSegmentsProcedure},
		{"ExportClip", "ExportClipRequest", "ExportClipResponse", true, understudyv1connect.RecordingServiceExportClipProcedure},
		{"ReadSegment", "ReadSegmentRequest", "ReadSegmentResponse", true, understudyv1connect.RecordingServiceReadSegmentProcedure},
	},
	"understudy.v1.ClusterService": {
		{"ListNodes", "ListNodesRequest", "ListNodesResponse", false, understudyv1connect.ClusterServiceListNodesProcedure},
		{"GetPlacement", "GetPlacementRequest", "GetPlacementResponse", false, understudyv1connect.ClusterServiceGetPlacementProcedure},
		{"WatchEvents", "WatchEventsRequest", "WatchEventsResponse", true, understudyv1connect.ClusterServiceWatchEventsProcedure},
		{"UpdateNode", "UpdateNodeRequest", "UpdateNodeResponse", false, understudyv1connect.ClusterServiceUpdateNodeProcedure},
	},
}

func TestServicesRegistered(t *testing.T) {
	for svcName, methods := range services {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svcName))
		if err != nil {
			t.Errorf("service %s not registered: %v", svcName, err)
			continue
		}
		svc, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			t.Errorf("%s is a %T, not a service", svcName, d)
			continue
		}
		if got := svc.Methods().Len(); got != len(methods) {
			t.Errorf("%s has %d methods, the contract lists %d: update this test with the API", svcName, got, len(methods))
		}
		for _, m := range methods {
			md := svc.Methods().ByName(protoreflect.Name(m.name))
			if md == nil {
				t.Errorf("%s has no method %s", svcName, m.name)
				continue
			}
			if got := string(md.Input().FullName()); got != "understudy.v1."+m.in {
				t.Errorf("%s.%s input = %s, want understudy.v1.%s", svcName, m.name, got, m.in)
			}
			if got := string(md.Output().FullName()); got != "understudy.v1."+m.out {
				t.Errorf("%s.%s output = %s, want understudy.v1.%s", svcName, m.name, got, m.out)
			}
			if md.IsStreamingServer() != m.serverStream || md.IsStreamingClient() {
				t.Errorf("%s.%s streaming (client %v, server %v), want client false, server %v",
					svcName, m.name, md.IsStreamingClient(), md.IsStreamingServer(), m.serverStream)
			}
			if want := "/" + svcName + "/" + m.name; m.procedure != want {
				t.Errorf("connect procedure %q, want %q", m.procedure, want)
			}
		}
	}
}

// field is one field of the contract: its proto name, kind, whether it is
// repeated, and for message and enum fields the full type name.
type field struct {
	name     string
	kind     protoreflect.Kind
	repeated bool
	typ      string
}

var (
	ts       = "google.protobuf.Timestamp"
	messages = map[string][]field{
		// Read by scripts and the other tools: names must not change.
		"GetTimelineResponse": {
			{"coverage", protoreflect.MessageKind, true, "understudy.v1.CoverageInterval"},
			{"gaps", protoreflect.MessageKind, true, "understudy.v1.Gap"},
		},
		"CoverageInterval": {
			{"start", protoreflect.MessageKind, false, ts},
			{"end", protoreflect.MessageKind, false, ts},
			{"node_ids", protoreflect.StringKind, true, ""},
			{"origin", protoreflect.EnumKind, false, "understudy.v1.Origin"},
		},
		"Gap": {
			{"start", protoreflect.MessageKind, false, ts},
			{"end", protoreflect.MessageKind, false, ts},
			{"kind", protoreflect.EnumKind, false, "understudy.v1.GapKind"},
		},
		"GetPlacementResponse": {
			{"assignments", protoreflect.MessageKind, true, "understudy.v1.Assignment"},
		},
		"Assignment": {
			{"stream_id", protoreflect.StringKind, false, ""},
			{"node_ids", protoreflect.StringKind, true, ""},
		},
		"ListNodesResponse": {
			{"nodes", protoreflect.MessageKind, true, "understudy.v1.Node"},
		},
		"Node": {
			{"id", protoreflect.StringKind, false, ""},
			{"domain", protoreflect.StringKind, false, ""},
			{"state", protoreflect.EnumKind, false, "understudy.v1.NodeState"},
			{"api_address", protoreflect.StringKind, false, ""},
			{"home_streams", protoreflect.Uint32Kind, false, ""},
			{"replica_streams", protoreflect.Uint32Kind, false, ""},
		},
		"Stream": {
			{"id", protoreflect.StringKind, false, ""},
			{"url", protoreflect.StringKind, false, ""},
			{"credentials", protoreflect.MessageKind, false, "understudy.v1.Credentials"},
			{"has_credentials", protoreflect.BoolKind, false, ""},
			{"replicas", protoreflect.Uint32Kind, false, ""},
			{"archive_retention", protoreflect.MessageKind, false, "google.protobuf.Duration"},
			{"enabled", protoreflect.BoolKind, false, ""},
			{"create_time", protoreflect.MessageKind, false, ts},
			{"update_time", protoreflect.MessageKind, false, ts},
		},
		"UpdateNodeRequest": {
			{"node_id", protoreflect.StringKind, false, ""},
			{"state", protoreflect.EnumKind, false, "understudy.v1.NodeState"},
			{"capacity", protoreflect.Uint32Kind, false, ""},
			{"forget", protoreflect.BoolKind, false, ""},
		},
		"UpdateStreamRequest": {
			{"stream", protoreflect.MessageKind, false, "understudy.v1.Stream"},
			{"update_mask", protoreflect.MessageKind, false, "google.protobuf.FieldMask"},
		},
		"ExportClipResponse": {
			{"chunk", protoreflect.BytesKind, false, ""},
			{"content_type", protoreflect.StringKind, false, ""},
			{"start", protoreflect.MessageKind, false, ts},
			{"end", protoreflect.MessageKind, false, ts},
		},
		"Event": {
			{"time", protoreflect.MessageKind, false, ts},
			{"kind", protoreflect.EnumKind, false, "understudy.v1.EventKind"},
			{"stream_id", protoreflect.StringKind, false, ""},
			{"node_id", protoreflect.StringKind, false, ""},
			{"message", protoreflect.StringKind, false, ""},
		},
	}
)

func TestContractFields(t *testing.T) {
	for msgName, fields := range messages {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName("understudy.v1." + msgName))
		if err != nil {
			t.Errorf("message %s not registered: %v", msgName, err)
			continue
		}
		md := mt.Descriptor()
		for _, f := range fields {
			fd := md.Fields().ByName(protoreflect.Name(f.name))
			if fd == nil {
				t.Errorf("%s has no field %q", msgName, f.name)
				continue
			}
			if fd.Kind() != f.kind || fd.IsList() != f.repeated {
				t.Errorf("%s.%s is %v (repeated %v), want %v (repeated %v)", msgName, f.name, fd.Kind(), fd.IsList(), f.kind, f.repeated)
			}
			var typ string
			switch {
			case fd.Message() != nil:
				typ = string(fd.Message().FullName())
			case fd.Enum() != nil:
				typ = string(fd.Enum().FullName())
			}
			if typ != f.typ {
				t.Errorf("%s.%s has type %q, want %q", msgName, f.name, typ, f.typ)
			}
		}
	}
	// Maps are not lists: check them apart.
	for _, mf := range []struct{ msg, field string }{{"Stream", "labels"}, {"Event", "details"}} {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName("understudy.v1." + mf.msg))
		if err != nil {
			t.Fatal(err)
		}
		fd := mt.Descriptor().Fields().ByName(protoreflect.Name(mf.field))
		if fd == nil || !fd.IsMap() || fd.MapKey().Kind() != protoreflect.StringKind || fd.MapValue().Kind() != protoreflect.StringKind {
			t.Errorf("%s.%s is not a map<string, string>", mf.msg, mf.field)
		}
	}
}

// TestEnums pins the enum values by name and number: both are on the wire
// (the number in binary, the name in JSON).
func TestEnums(t *testing.T) {
	enums := map[string][]string{
		"SegmentClass": {"SEGMENT_CLASS_UNSPECIFIED", "SEGMENT_CLASS_ARCHIVE", "SEGMENT_CLASS_BUFFER"},
		"Origin":       {"ORIGIN_UNSPECIFIED", "ORIGIN_LIVE", "ORIGIN_BACKFILL"},
		"GapKind":      {"GAP_KIND_UNSPECIFIED", "GAP_KIND_SOURCE", "GAP_KIND_SYSTEM"},
		"NodeState": {"NODE_STATE_UNSPECIFIED", "NODE_STATE_ACTIVE", "NODE_STATE_DRAINING",
			"NODE_STATE_SATURATED", "NODE_STATE_SUSPECT", "NODE_STATE_DOWN", "NODE_STATE_LEFT"},
		"EventKind": {"EVENT_KIND_UNSPECIFIED", "EVENT_KIND_RECORDING_STARTED", "EVENT_KIND_RECORDING_STOPPED",
			"EVENT_KIND_GAP_OPENED", "EVENT_KIND_GAP_CLOSED", "EVENT_KIND_NODE_JOINED", "EVENT_KIND_NODE_LEFT",
			"EVENT_KIND_DISK_FAULT", "EVENT_KIND_CPU_THRESHOLD", "EVENT_KIND_BACKFILL_PROGRESS",
			"EVENT_KIND_SOURCE_UNREACHABLE", "EVENT_KIND_SOURCE_REACHABLE", "EVENT_KIND_ROLE_CHANGED",
			"EVENT_KIND_NODE_STATE_CHANGED", "EVENT_KIND_REPLICATION_CHANGED", "EVENT_KIND_CLUSTER_PROBLEM",
			"EVENT_KIND_BUFFER_EVICTED_EARLY"},
		"StreamState": {"STREAM_STATE_UNSPECIFIED", "STREAM_STATE_RECORDING", "STREAM_STATE_STARTING",
			"STREAM_STATE_CAMERA_UNREACHABLE", "STREAM_STATE_CAMERA_AUTH_FAILED", "STREAM_STATE_CAMERA_NOT_FOUND",
			"STREAM_STATE_UNSUPPORTED_CODEC", "STREAM_STATE_NOT_PLACED", "STREAM_STATE_UNDER_REPLICATED",
			"STREAM_STATE_DISABLED", "STREAM_STATE_FAILING", "STREAM_STATE_UNKNOWN"},
	}
	for name, values := range enums {
		et, err := protoregistry.GlobalTypes.FindEnumByName(protoreflect.FullName("understudy.v1." + name))
		if err != nil {
			t.Errorf("enum %s not registered: %v", name, err)
			continue
		}
		vals := et.Descriptor().Values()
		if vals.Len() != len(values) {
			t.Errorf("%s has %d values, the contract lists %d: update this test with the API", name, vals.Len(), len(values))
		}
		for i, v := range values {
			vd := vals.ByName(protoreflect.Name(v))
			if vd == nil {
				t.Errorf("%s has no value %s", name, v)
			} else if int(vd.Number()) != i {
				t.Errorf("%s.%s = %d, want %d", name, v, vd.Number(), i)
			}
		}
	}
}

// recordingStub serves ExportClip from fixed bytes: enough to prove the
// generated server-streaming code carries chunks and the first message's
// metadata end to end.
type recordingStub struct {
	understudyv1connect.UnimplementedRecordingServiceHandler
	clip []byte
}

func (s recordingStub) ExportClip(_ context.Context, req *connect.Request[understudyv1.ExportClipRequest], out *connect.ServerStream[understudyv1.ExportClipResponse]) error {
	const chunk = 4
	for i := 0; i < len(s.clip); i += chunk {
		msg := &understudyv1.ExportClipResponse{Chunk: s.clip[i:min(i+chunk, len(s.clip))]}
		if i == 0 {
			msg.ContentType = "video/mp4"
			msg.Start, msg.End = req.Msg.GetStart(), req.Msg.GetEnd()
		}
		if err := out.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

func TestConnectRoundTrip(t *testing.T) {
	clip := []byte("ftyp....moov....mdat....tail")
	mux := http.NewServeMux()
	mux.Handle(understudyv1connect.NewRecordingServiceHandler(recordingStub{clip: clip}))
	mux.Handle(understudyv1connect.NewClusterServiceHandler(understudyv1connect.UnimplementedClusterServiceHandler{}))
	var (
		mu              sync.Mutex
		listNodesMethod string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == understudyv1connect.ClusterServiceListNodesProcedure {
			mu.Lock()
			listNodesMethod = r.Method
			mu.Unlock()
		}
		mux.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	rec := understudyv1connect.NewRecordingServiceClient(srv.Client(), srv.URL)
	start := timestamppb.New(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	end := timestamppb.New(start.AsTime().Add(30 * time.Second))
	stream, err := rec.ExportClip(ctx, connect.NewRequest(&understudyv1.ExportClipRequest{StreamId: "cam-1", Start: start, End: end}))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	n := 0
	for stream.Receive() {
		m := stream.Msg()
		if n == 0 && (m.GetContentType() != "video/mp4" || !proto.Equal(m.GetStart(), start) || !proto.Equal(m.GetEnd(), end)) {
			t.Errorf("first message metadata = %q %v %v", m.GetContentType(), m.GetStart(), m.GetEnd())
		}
		got.Write(m.GetChunk())
		n++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), clip) || n != 7 {
		t.Errorf("received %q in %d messages, want %q in 7", got.Bytes(), n, clip)
	}

	// Read-only methods are marked NO_SIDE_EFFECTS, so a client may use
	// HTTP GET; an unimplemented one still answers with its proper code.
	cl := understudyv1connect.NewClusterServiceClient(srv.Client(), srv.URL, connect.WithHTTPGet())
	_, err = cl.ListNodes(ctx, connect.NewRequest(&understudyv1.ListNodesRequest{}))
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeUnimplemented {
		t.Errorf("ListNodes on an unimplemented handler: %v, want code unimplemented", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if listNodesMethod != http.MethodGet {
		t.Errorf("ListNodes went as HTTP %q, want GET", listNodesMethod)
	}
}
