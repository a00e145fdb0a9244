package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// ctlStrings is a repeatable string flag.
type ctlStrings []string

func (s *ctlStrings) String() string { return strings.Join(*s, ",") }
func (s *ctlStrings) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*s = append(*s, v)
	return nil
}

func ctlStreams(ctx context.Context, c *ctlEnv, args []string) error {
	if len(args) == 0 {
		return ctlUsagef("streams: want a subcommand: add, list, get, update, enable, disable, rm")
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, `usage: understudy ctl streams SUBCOMMAND [flags]

  add ID      add a stream (--url, credentials, --replicas, --retention, labels)
  list        list the streams with their state (alias ls)
  get ID      show one stream, its state and its recorders
  update ID   change a stream's fields
  enable ID   start recording a stream
  disable ID  stop recording a stream, keeping its definition
  rm ID       delete a stream (alias delete); its recordings age out

ID is the stream id, as the argument or as --id ID.
"understudy ctl streams SUBCOMMAND -h" lists the flags of each.
`)
		return flag.ErrHelp
	case "add":
		return ctlStreamsAdd(ctx, c, rest)
	case "list", "ls":
		return ctlStreamsList(ctx, c, rest)
	case "get":
		return ctlStreamsGet(ctx, c, rest)
	case "update":
		return ctlStreamsUpdate(ctx, c, rest)
	case "enable", "disable":
		return ctlStreamsEnable(ctx, c, rest, sub == "enable")
	case "rm", "delete":
		return ctlStreamsRm(ctx, c, rest)
	default:
		return ctlUsagef("streams: unknown subcommand %q (want add, list, get, update, enable, disable, rm)", sub)
	}
}

// ctlStreamFields are the stream flags shared by add and update.
type ctlStreamFields struct {
	url          string
	replicas     uint
	retention    ctlDurationFlag
	labels       ctlLabels
	username     string
	password     string
	passwordFile string
	weight       uint
	scope        string
	strictScope  bool
}

func (f *ctlStreamFields) add(fs *flag.FlagSet) {
	f.labels = ctlLabels{}
	fs.StringVar(&f.url, "url", "", "RTSP URL of the camera (rtsp:// or rtsps://), without credentials")
	fs.UintVar(&f.replicas, "replicas", 0, "R: nodes that record the stream, home included (0: cluster default)")
	fs.Var(&f.retention, "retention", "archive retention: 30d, 12h, 90m or a Go duration (default: cluster default)")
	fs.Var(f.labels, "label", "label key=value (repeatable)")
	fs.StringVar(&f.username, "username", "", "camera user name")
	fs.StringVar(&f.password, "password", "", "camera password (prefer --password-file: arguments are visible to other users)")
	fs.StringVar(&f.passwordFile, "password-file", "", "read the camera password from this file")
	fs.UintVar(&f.weight, "weight", 0, "load weight in placement, such as the bitrate in Mbit/s (default 1)")
	fs.StringVar(&f.scope, "scope", "", "keep the copies under this failure-domain prefix, e.g. zone=hq (\"\" in update: anywhere)")
	fs.BoolVar(&f.strictScope, "strict-scope", false, "with --scope: place only the copies the scope can hold, none outside it")
}

// check validates the values of the flags that were set.
func (f *ctlStreamFields) check(set map[string]bool) error {
	if set["url"] {
		u, err := url.Parse(f.url)
		if err != nil {
			// url.Parse quotes its input, which may hold a password.
			return ctlUsagef("--url: not a URL")
		}
		if u.User != nil {
			return ctlUsagef("--url: must not contain credentials; use --username and --password-file")
		}
		if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
			return ctlUsagef("--url: scheme must be rtsp or rtsps")
		}
		if u.Host == "" {
			return ctlUsagef("--url: no host")
		}
	}
	if set["replicas"] && f.replicas > math.MaxUint32 {
		return ctlUsagef("--replicas: too large")
	}
	if set["weight"] && (f.weight < 1 || f.weight > 1<<24) {
		return ctlUsagef("--weight: must be between 1 and %d", 1<<24)
	}
	if set["retention"] && f.retention.d <= 0 {
		return ctlUsagef("--retention: must be positive")
	}
	if set["password"] && set["password-file"] {
		return ctlUsagef("--password and --password-file are exclusive")
	}
	if (set["password"] || set["password-file"]) && f.username == "" {
		return ctlUsagef("--password and --password-file need --username")
	}
	return nil
}

// credentials returns the credentials the flags give, reading the password
// file; nil when no --username was given.
func (f *ctlStreamFields) credentials() (*understudyv1.Credentials, error) {
	if f.username == "" {
		return nil, nil
	}
	pw := f.password
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return nil, ctlUsagef("--password-file: %v", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	return &understudyv1.Credentials{Username: f.username, Password: pw}, nil
}

func ctlSetFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

func ctlStreamsAdd(ctx context.Context, c *ctlEnv, args []string) error {
	fs := c.flags("streams add")
	idFlag := fs.String("id", "", "stream id (or give it as the argument)")
	var f ctlStreamFields
	f.add(fs)
	disabled := fs.Bool("disabled", false, "create the stream disabled (not recorded)")
	if err := c.parse(fs, args, -1, ""); err != nil {
		return err
	}
	set := ctlSetFlags(fs)
	sid, err := c.streamID("streams add", []string{*idFlag}, true)
	if err != nil {
		return err
	}
	id := &sid
	if *id == "" || f.url == "" {
		return ctlUsagef("streams add: a stream id (ID or --id) and --url are required")
	}
	if err := f.check(set); err != nil {
		return err
	}
	creds, err := f.credentials()
	if err != nil {
		return err
	}
	s := &understudyv1.Stream{
		Id:          *id,
		Url:         f.url,
		Credentials: creds,
		Replicas:    uint32(f.replicas),
		Labels:      f.labels,
		Enabled:     !*disabled,
		Weight:      uint32(f.weight),
		Scope:       f.scope,
		StrictScope: f.strictScope,
	}
	if f.retention.set {
		s.ArchiveRetention = durationpb.New(f.retention.d)
	}
	if err := c.connect(); err != nil {
		return err
	}
	ctx, cancel := c.unary(ctx)
	defer cancel()
	res, err := c.streams.CreateStream(ctx, connect.NewRequest(&understudyv1.CreateStreamRequest{Stream: s}))
	if err != nil {
		return err
	}
	if c.opts.json {
		return writeCtlJSON(c.stdout, res.Msg)
	}
	return writeCtlStream(c.stdout, res.Msg.GetStream())
}

func ctlStreamsList(ctx context.Context, c *ctlEnv, args []string) error {
	fs := c.flags("streams list")
	if err := c.parse(fs, args, 0, ""); err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	// Every page, merged into one response.
	all := &understudyv1.ListStreamsResponse{}
	token := ""
	for {
		cctx, cancel := c.unary(ctx)
		res, err := c.streams.ListStreams(cctx, connect.NewRequest(&understudyv1.ListStreamsRequest{PageToken: token}))
		cancel()
		if err != nil {
			return err
		}
		all.Streams = append(all.Streams, res.Msg.GetStreams()...)
		ctlNotePartial(c, res.Header().Get("Understudy-Partial"))
		token = res.Msg.GetNextPageToken()
		if token == "" {
			break
		}
	}
	if c.opts.json {
		return writeCtlJSON(c.stdout, all)
	}
	return writeCtlStreams(c.stdout, all.GetStreams())
}

// ctlNotePartial says on stderr which nodes did not answer a federated
// read (the Understudy-Partial header): their part comes from gossip.
func ctlNotePartial(c *ctlEnv, nodes string) {
	if nodes != "" {
		fmt.Fprintf(c.stderr, "ctl: note: %s did not answer; their recorders' state is from their gossiped status\n", nodes)
	}
}

func ctlStreamsGet(ctx context.Context, c *ctlEnv, args []string) error {
	fs := c.flags("streams get")
	idFlag := fs.String("id", "", "stream id (or give it as the argument)")
	if err := c.parse(fs, args, -1, ""); err != nil {
		return err
	}
	id, err := c.streamID("streams get", []string{*idFlag}, false)
	if err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	ctx, cancel := c.unary(ctx)
	defer cancel()
	res, err := c.streams.GetStream(ctx, connect.NewRequest(&understudyv1.GetStreamRequest{Id: id}))
	if err != nil {
		return err
	}
	ctlNotePartial(c, res.Header().Get("Understudy-Partial"))
	if c.opts.json {
		return writeCtlJSON(c.stdout, res.Msg)
	}
	return writeCtlStream(c.stdout, res.Msg.GetStream())
}

func ctlStreamsUpdate(ctx context.Context, c *ctlEnv, args []string) error {
	fs := c.flags("streams update")
	var f ctlStreamFields
	f.add(fs)
	clearLabels := fs.Bool("clear-labels", false, "remove every label")
	clearCreds := fs.Bool("clear-credentials", false, "remove the stored credentials")
	idFlag := fs.String("id", "", "stream id (or give it as the argument)")
	if err := c.parse(fs, args, -1, ""); err != nil {
		return err
	}
	id, err := c.streamID("streams update", []string{*idFlag}, false)
	if err != nil {
		return err
	}
	set := ctlSetFlags(fs)
	if err := f.check(set); err != nil {
		return err
	}
	s := &understudyv1.Stream{Id: id}
	var paths []string
	if set["url"] {
		s.Url = f.url
		paths = append(paths, "url")
	}
	if set["replicas"] {
		s.Replicas = uint32(f.replicas)
		paths = append(paths, "replicas")
	}
	if set["retention"] {
		s.ArchiveRetention = durationpb.New(f.retention.d)
		paths = append(paths, "archive_retention")
	}
	if set["weight"] {
		s.Weight = uint32(f.weight)
		paths = append(paths, "weight")
	}
	if set["scope"] {
		s.Scope = f.scope
		paths = append(paths, "scope")
	}
	if set["strict-scope"] {
		s.StrictScope = f.strictScope
		paths = append(paths, "strict_scope")
	}
	if set["label"] && *clearLabels {
		return ctlUsagef("--label and --clear-labels are exclusive")
	}
	if set["label"] || *clearLabels {
		// The mask path "labels" replaces the whole map.
		s.Labels = f.labels
		paths = append(paths, "labels")
	}
	if set["username"] && *clearCreds {
		return ctlUsagef("--username and --clear-credentials are exclusive")
	}
	if set["password"] || set["password-file"] || set["username"] || *clearCreds {
		if !*clearCreds && f.username == "" {
			return ctlUsagef("streams update: new credentials need --username")
		}
		creds, err := f.credentials()
		if err != nil {
			return err
		}
		s.Credentials = creds
		paths = append(paths, "credentials")
	}
	if len(paths) == 0 {
		return ctlUsagef("streams update: nothing to change (give --url, --replicas, --retention, --label, --clear-labels, --username, --clear-credentials, --weight, --scope, --strict-scope)")
	}
	return c.updateStream(ctx, s, paths)
}

func ctlStreamsEnable(ctx context.Context, c *ctlEnv, args []string, enable bool) error {
	name := "streams disable"
	if enable {
		name = "streams enable"
	}
	fs := c.flags(name)
	idFlag := fs.String("id", "", "stream id (or give it as the argument)")
	if err := c.parse(fs, args, -1, ""); err != nil {
		return err
	}
	id, err := c.streamID(name, []string{*idFlag}, false)
	if err != nil {
		return err
	}
	return c.updateStream(ctx, &understudyv1.Stream{Id: id, Enabled: enable}, []string{"enabled"})
}

func (c *ctlEnv) updateStream(ctx context.Context, s *understudyv1.Stream, paths []string) error {
	if err := c.connect(); err != nil {
		return err
	}
	ctx, cancel := c.unary(ctx)
	defer cancel()
	res, err := c.streams.UpdateStream(ctx, connect.NewRequest(&understudyv1.UpdateStreamRequest{
		Stream: s, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}}))
	if err != nil {
		return err
	}
	if c.opts.json {
		return writeCtlJSON(c.stdout, res.Msg)
	}
	return writeCtlStream(c.stdout, res.Msg.GetStream())
}

func ctlStreamsRm(ctx context.Context, c *ctlEnv, args []string) error {
	fs := c.flags("streams rm")
	idFlag := fs.String("id", "", "stream id (or give it as the argument)")
	if err := c.parse(fs, args, -1, ""); err != nil {
		return err
	}
	id, err := c.streamID("streams rm", []string{*idFlag}, false)
	if err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	ctx, cancel := c.unary(ctx)
	defer cancel()
	res, err := c.streams.DeleteStream(ctx, connect.NewRequest(&understudyv1.DeleteStreamRequest{Id: id}))
	if err != nil {
		return err
	}
	if c.opts.json {
		return writeCtlJSON(c.stdout, res.Msg)
	}
	_, err = fmt.Fprintf(c.stdout, "deleted stream %s (its recordings age out with their retention)\n", id)
	return err
}

// ctlRange adds --stream, --from and --to to fs.
type ctlRange struct {
	stream, id string
	from, to   ctlTimeFlag
}

func (r *ctlRange) add(fs *flag.FlagSet, c *ctlEnv) {
	r.from.now, r.to.now = &c.now, &c.now
	fs.StringVar(&r.id, "id", "", "stream id (or give it as the argument; alias --stream)")
	fs.StringVar(&r.stream, "stream", "", "stream id (alias of --id)")
	fs.Var(&r.from, "from", "start of the range: RFC 3339, now, now-5m... (required)")
	fs.Var(&r.to, "to", "end of the range: RFC 3339, now, now-5m... (required)")
}

func (r *ctlRange) check(c *ctlEnv, cmd string) error {
	id, err := c.streamID(cmd, []string{r.id, r.stream}, false)
	if err != nil {
		return err
	}
	r.stream = id
	if !r.from.set || !r.to.set {
		return ctlUsagef("%s: --from and --to are required", cmd)
	}
	if !r.to.t.After(r.from.t) {
		return ctlUsagef("%s: --to must be after --from", cmd)
	}
	return nil
}

func ctlTimeline(ctx context.Context, c *ctlEnv, args []string) error {
	fs := c.flags("timeline")
	var r ctlRange
	r.add(fs, c)
	node := fs.String("node", "", "only the segments held by this node")
	class := fs.String("class", "", "only segments of this class: archive or buffer")
	if err := c.parse(fs, args, -1, ""); err != nil {
		return err
	}
	if err := r.check(c, "timeline"); err != nil {
		return err
	}
	req := &understudyv1.GetTimelineRequest{StreamId: r.stream, Start: timestamppb.New(r.from.t),
		End: timestamppb.New(r.to.t), NodeId: *node}
	switch *class {
	case "":
	case "archive":
		req.Class = understudyv1.SegmentClass_SEGMENT_CLASS_ARCHIVE
	case "buffer":
		req.Class = understudyv1.SegmentClass_SEGMENT_CLASS_BUFFER
	default:
		return ctlUsagef("--class: want archive or buffer, not %q", *class)
	}
	if err := c.connect(); err != nil {
		return err
	}
	ctx, cancel := c.unary(ctx)
	defer cancel()
	res, err := c.recording.GetTimeline(ctx, connect.NewRequest(req))
	if err != nil {
		return err
	}
	if c.opts.json {
		return writeCtlJSON(c.stdout, res.Msg)
	}
	return writeCtlTimeline(c.stdout, res.Msg)
}

func ctlExport(ctx context.Context, c *ctlEnv, args []string) error {
	fs := c.flags("export")
	var r ctlRange
	r.add(fs, c)
	out := fs.String("o", "", "output file, or - for stdout (required); a new file, written under a temporary name and renamed when complete")
	force := fs.Bool("force", false, "replace an existing regular file at -o")
	if err := c.parse(fs, args, -1, ""); err != nil {
		return err
	}
	if err := r.check(c, "export"); err != nil {
		return err
	}
	if *out == "" {
		return ctlUsagef("export: -o is required")
	}
	if *out == "-" && c.opts.json {
		return ctlUsagef("export: --json and -o - both want stdout")
	}
	if err := c.connect(); err != nil {
		return err
	}
	dst, err := openClipOutput(*out, *force, c.stdout)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer dst.abort()
	meta, n, err := ctlExportTo(ctx, c, &understudyv1.ExportClipRequest{StreamId: r.stream,
		Start: timestamppb.New(r.from.t), End: timestamppb.New(r.to.t)}, dst)
	if err == nil {
		err = dst.commit()
	}
	if err != nil {
		return err
	}
	if c.opts.json {
		// The metadata message, without chunk, plus where it went.
		return writeCtlJSON(c.stdout, meta)
	}
	status := c.stdout
	if dst.toStdout() {
		status = c.stderr
	}
	d := meta.GetEnd().AsTime().Sub(meta.GetStart().AsTime())
	_, err = fmt.Fprintf(status, "wrote %d bytes (%s) to %s\nclip %s .. %s (%s)\n", n, ctlDash(meta.GetContentType()),
		*out, fmtCtlTime(meta.GetStart()), fmtCtlTime(meta.GetEnd()), fmtCtlDuration(d))
	return err
}

// ctlExportTo receives the clip into dst. It returns the first message
// without its chunk and the byte count.
func ctlExportTo(ctx context.Context, c *ctlEnv, req *understudyv1.ExportClipRequest, dst io.Writer) (*understudyv1.ExportClipResponse, int64, error) {
	stream, err := c.recording.ExportClip(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, 0, err
	}
	defer stream.Close()
	var meta *understudyv1.ExportClipResponse
	var n int64
	for stream.Receive() {
		m := stream.Msg()
		if meta == nil {
			meta = &understudyv1.ExportClipResponse{ContentType: m.GetContentType(), Start: m.GetStart(), End: m.GetEnd()}
		}
		w, err := dst.Write(m.GetChunk())
		n += int64(w)
		if err != nil {
			return nil, 0, err
		}
	}
	if err := stream.Err(); err != nil {
		return nil, 0, err
	}
	if meta == nil {
		return nil, 0, errors.New("export: the server sent no clip")
	}
	return meta, n, nil
}

func ctlNodes(ctx context.Context, c *ctlEnv, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch sub, rest := args[0], args[1:]; sub {
		case "list", "ls":
			return ctlNodesList(ctx, c, rest)
		case "drain":
			return ctlNodesUpdate(ctx, c, rest, "nodes drain", understudyv1.NodeState_NODE_STATE_DRAINING)
		case "activate":
			return ctlNodesUpdate(ctx, c, rest, "nodes activate", understudyv1.NodeState_NODE_STATE_ACTIVE)
		case "update":
			return ctlNodesUpdate(ctx, c, rest, "nodes update", understudyv1.NodeState_NODE_STATE_UNSPECIFIED)
		case "forget":
			return ctlNodesForget(ctx, c, rest)
		default:
			return ctlUsagef("nodes: unknown subcommand %q (want list, drain, activate, update, forget)", sub)
		}
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprint(c.stdout, `usage: understudy ctl nodes [SUBCOMMAND] [flags]

  list              list the nodes (the default)
  drain ID          hand the node's streams to others before it is taken out
  activate ID       give a drained node streams again
  update ID [--state active|draining] [--capacity N]
                    change a node's state or capacity weight
  forget ID         a node gone for good: stop placing it as a known node
                    that is down (only its copies replaced) and place as
                    if it never existed; refused for a live node

Any node passes the change to the node named, which keeps it across
restarts; placement follows within a gossip round. A forget is made on
the node asked and replicated to the others.
`)
		return flag.ErrHelp
	}
	return ctlNodesList(ctx, c, args)
}

func ctlNodesList(ctx context.Context, c *ctlEnv, args []string) error {
	fs := c.flags("nodes list")
	if err := c.parse(fs, args, 0, ""); err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	ctx, cancel := c.unary(ctx)
	defer cancel()
	res, err := c.cluster.ListNodes(ctx, connect.NewRequest(&understudyv1.ListNodesRequest{}))
	if err != nil {
		return err
	}
	if c.opts.json {
		return writeCtlJSON(c.stdout, res.Msg)
	}
	return writeCtlNodes(c.stdout, res.Msg.GetNodes())
}

// ctlNodesUpdate changes a node's settings: state fixed by the
// subcommand (drain, activate), or from --state (update).
func ctlNodesUpdate(ctx context.Context, c *ctlEnv, args []string, name string, state understudyv1.NodeState) error {
	fs := c.flags(name)
	var stateFlag string
	capacity := fs.Uint("capacity", 0, "capacity weight, 1 to 1048576 (0: keep)")
	if state == understudyv1.NodeState_NODE_STATE_UNSPECIFIED {
		fs.StringVar(&stateFlag, "state", "", "active or draining (empty: keep)")
	}
	if err := c.parse(fs, args, 1, "a node id"); err != nil {
		return err
	}
	switch strings.ToLower(stateFlag) {
	case "":
	case "active":
		state = understudyv1.NodeState_NODE_STATE_ACTIVE
	case "draining", "drain":
		state = understudyv1.NodeState_NODE_STATE_DRAINING
	default:
		return ctlUsagef("%s: --state: want active or draining, got %q", name, stateFlag)
	}
	if *capacity > 1<<20 {
		return ctlUsagef("%s: --capacity: want 1 to 1048576, got %d", name, *capacity)
	}
	if state == understudyv1.NodeState_NODE_STATE_UNSPECIFIED && *capacity == 0 {
		return ctlUsagef("%s: nothing to change: give --state or --capacity", name)
	}
	if err := c.connect(); err != nil {
		return err
	}
	ctx, cancel := c.unary(ctx)
	defer cancel()
	res, err := c.cluster.UpdateNode(ctx, connect.NewRequest(&understudyv1.UpdateNodeRequest{
		NodeId: c.pos[0], State: state, Capacity: uint32(*capacity)}))
	if err != nil {
		return err
	}
	if c.opts.json {
		return writeCtlJSON(c.stdout, res.Msg)
	}
	return writeCtlNodes(c.stdout, []*understudyv1.Node{res.Msg.GetNode()})
}

// ctlNodesForget removes a node gone for good from the known-node
// registry, so that its copies are placed as if it never existed.
func ctlNodesForget(ctx context.Context, c *ctlEnv, args []string) error {
	fs := c.flags("nodes forget")
	if err := c.parse(fs, args, 1, "a node id"); err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	ctx, cancel := c.unary(ctx)
	defer cancel()
	res, err := c.cluster.UpdateNode(ctx, connect.NewRequest(&understudyv1.UpdateNodeRequest{NodeId: c.pos[0], Forget: true}))
	if err != nil {
		return err
	}
	if c.opts.json {
		return writeCtlJSON(c.stdout, res.Msg)
	}
	_, err = fmt.Fprintf(c.stdout, "node %s forgotten: its streams are placed as if it never existed\n", c.pos[0])
	return err
}

func ctlPlacement(ctx context.Context, c *ctlEnv, args []string) error {
	if len(args) > 0 && args[0] == "plan" {
		return ctlPlacementPlan(ctx, c, args[1:])
	}
	fs := c.flags("placement")
	streamFlag := fs.String("stream", "", "only this stream (alias --id, or give it as the argument)")
	idFlag := fs.String("id", "", "only this stream (alias of --stream)")
	if err := c.parse(fs, args, -1, ""); err != nil {
		return err
	}
	sid, err := c.streamID("placement", []string{*idFlag, *streamFlag}, true)
	if err != nil {
		return err
	}
	stream := &sid
	if err := c.connect(); err != nil {
		return err
	}
	ctx, cancel := c.unary(ctx)
	defer cancel()
	res, err := c.cluster.GetPlacement(ctx, connect.NewRequest(&understudyv1.GetPlacementRequest{StreamId: *stream}))
	if err != nil {
		return err
	}
	if c.opts.json {
		return writeCtlJSON(c.stdout, res.Msg)
	}
	return writeCtlPlacement(c.stdout, res.Msg.GetAssignments())
}

// parseCtlEventKind reads an event kind by its name, with or without the
// EVENT_KIND_ prefix, in any case: gap_opened, GAP_OPENED,
// EVENT_KIND_GAP_OPENED.
func parseCtlEventKind(s string) (understudyv1.EventKind, error) {
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "EVENT_KIND_") {
		name = "EVENT_KIND_" + name
	}
	v, ok := understudyv1.EventKind_value[name]
	if !ok || v == 0 {
		return 0, ctlUsagef("--kind: unknown event kind %q (valid: %s)", s, strings.Join(ctlEventKinds(), ", "))
	}
	return understudyv1.EventKind(v), nil
}

// ctlEventKinds are the event kinds --kind takes, in the API's order.
func ctlEventKinds() []string {
	var out []string
	for v := int32(1); ; v++ {
		name, ok := understudyv1.EventKind_name[v]
		if !ok {
			return out
		}
		out = append(out, strings.ToLower(strings.TrimPrefix(name, "EVENT_KIND_")))
	}
}

func ctlEvents(ctx context.Context, c *ctlEnv, args []string) error {
	fs := c.flags("events")
	var streams, nodes, kinds ctlStrings
	fs.Var(&streams, "stream", "only events of this stream (repeatable)")
	fs.Var(&nodes, "node", "only events of this node (repeatable)")
	fs.Var(&kinds, "kind", "only events of this kind (repeatable): "+strings.Join(ctlEventKinds(), ", "))
	if err := c.parse(fs, args, 0, ""); err != nil {
		return err
	}
	req := &understudyv1.WatchEventsRequest{StreamIds: streams, NodeIds: nodes}
	for _, k := range kinds {
		v, err := parseCtlEventKind(k)
		if err != nil {
			return err
		}
		req.Kinds = append(req.Kinds, v)
	}
	if err := c.connect(); err != nil {
		return err
	}
	stream, err := c.cluster.WatchEvents(ctx, connect.NewRequest(req))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer stream.Close()
	// The call returns once the server subscribed: from here no event is
	// missed. Said on stderr, so stdout stays the events alone.
	fmt.Fprintln(c.stderr, "ctl: waiting for events (Ctrl-C to stop)")
	for stream.Receive() {
		e := stream.Msg().GetEvent()
		if c.opts.json {
			b, err := marshalCtlJSON(stream.Msg(), false)
			if err != nil {
				return err
			}
			if _, err := c.stdout.Write(b); err != nil {
				return err
			}
			continue
		}
		if _, err := fmt.Fprintln(c.stdout, fmtCtlEvent(e)); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		// Interrupted: the normal way to stop following.
		return nil
	}
	if err := stream.Err(); err != nil {
		return err
	}
	// The stream never ends by itself: the server went away (a shutdown).
	return errors.New("events: the server ended the event stream (node shutting down?)")
}
