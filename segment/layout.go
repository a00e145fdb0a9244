package segment

import (
	"fmt"
	"strings"
	"time"
)

// timeLayout is the start time in file names: UTC, nanoseconds, no
// separators that could be confused with the name's own dashes.
const timeLayout = "20060102T150405.000000000Z"

// segmentRelPath is the data-directory-relative path of a segment file:
// segments/<stream>/<yyyy-mm-dd>/<start>-<class>-<origin>-<node>.mp4.
func segmentRelPath(stream string, start time.Time, class Class, origin Origin, node string) string {
	start = start.UTC()
	return segmentsDir + "/" + stream + "/" + start.Format("2006-01-02") + "/" +
		start.Format(timeLayout) + "-" + class.String() + "-" + origin.String() + "-" + node + ".mp4"
}

// fileName is what a segment file's name says about it.
type fileName struct {
	stream string
	start  time.Time
	class  Class
	origin Origin
	node   string
}

// parseSegmentRelPath is the inverse of segmentRelPath.
func parseSegmentRelPath(rel string) (fileName, error) {
	var fn fileName
	parts := strings.Split(rel, "/")
	if len(parts) != 4 || parts[0] != segmentsDir {
		return fn, fmt.Errorf("path %q is not segments/<stream>/<day>/<file>", rel)
	}
	fn.stream = parts[1]
	if err := ValidateStreamID(fn.stream); err != nil {
		return fn, err
	}
	name, ok := strings.CutSuffix(parts[3], ".mp4")
	if !ok {
		return fn, fmt.Errorf("file %q is not an .mp4", parts[3])
	}
	f := strings.SplitN(name, "-", 4)
	if len(f) != 4 {
		return fn, fmt.Errorf("file name %q is not <start>-<class>-<origin>-<node>.mp4", parts[3])
	}
	var err error
	if fn.start, err = time.Parse(timeLayout, f[0]); err != nil {
		return fn, fmt.Errorf("file name %q: start: %w", parts[3], err)
	}
	if fn.class, err = ParseClass(f[1]); err != nil {
		return fn, err
	}
	if fn.origin, err = ParseOrigin(f[2]); err != nil {
		return fn, err
	}
	fn.node = f[3]
	if err := validateID(fn.node); err != nil {
		return fn, fmt.Errorf("file name %q: node: %w", parts[3], err)
	}
	if parts[2] != fn.start.Format("2006-01-02") {
		return fn, fmt.Errorf("file %q is in day directory %q", parts[3], parts[2])
	}
	if segmentRelPath(fn.stream, fn.start, fn.class, fn.origin, fn.node) != rel {
		return fn, fmt.Errorf("path %q is not in canonical form", rel)
	}
	return fn, nil
}
