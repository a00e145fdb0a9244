package understudyv1_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// ourFiles returns the paths of the files of package understudy.v1 in r.
func ourFiles(r interface {
	RangeFilesByPackage(protoreflect.FullName, func(protoreflect.FileDescriptor) bool)
}) map[string]protoreflect.FileDescriptor {
	out := map[string]protoreflect.FileDescriptor{}
	r.RangeFilesByPackage("understudy.v1", func(fd protoreflect.FileDescriptor) bool {
		out[fd.Path()] = fd
		return true
	})
	return out
}

// TestDocumentedFilesMatchGenerated checks that the embedded descriptor set
// (with comments, for server reflection) describes exactly the API the
// generated code registers: same files, and the same descriptors once the
// comments are set aside.
func TestDocumentedFilesMatchGenerated(t *testing.T) {
	documented, err := understudyv1.DocumentedFiles()
	if err != nil {
		t.Fatal(err)
	}
	docs, regs := ourFiles(documented), ourFiles(protoregistry.GlobalFiles)
	if len(regs) == 0 {
		t.Fatal("no understudy.v1 file registered")
	}
	for path, reg := range regs {
		doc, ok := docs[path]
		if !ok {
			t.Errorf("%s is registered but not in descriptor_set.binpb: run make proto", path)
			continue
		}
		want := protodesc.ToFileDescriptorProto(reg)
		got := protodesc.ToFileDescriptorProto(doc)
		got.SourceCodeInfo = nil
		if !proto.Equal(got, want) {
			t.Errorf("%s in descriptor_set.binpb differs from the generated code: run make proto", path)
		}
	}
	for path := range docs {
		if _, ok := regs[path]; !ok {
			t.Errorf("%s is in descriptor_set.binpb but not registered by the generated code: run make proto", path)
		}
	}
}

// TestEveryElementDocumented checks that every service, method, message,
// field, enum and enum value of the API has a leading comment (buf lint's
// COMMENTS rules, enforced here too because CI runs no buf).
func TestEveryElementDocumented(t *testing.T) {
	documented, err := understudyv1.DocumentedFiles()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range ourFiles(documented) {
		locs := fd.SourceLocations()
		check := func(d protoreflect.Descriptor) {
			n++
			if strings.TrimSpace(locs.ByDescriptor(d).LeadingComments) == "" {
				t.Errorf("%s (%s) has no doc comment", d.FullName(), fd.Path())
			}
		}
		enums := func(es protoreflect.EnumDescriptors) {
			for i := 0; i < es.Len(); i++ {
				check(es.Get(i))
				for j := 0; j < es.Get(i).Values().Len(); j++ {
					check(es.Get(i).Values().Get(j))
				}
			}
		}
		var messages func(protoreflect.MessageDescriptors)
		messages = func(ms protoreflect.MessageDescriptors) {
			for i := 0; i < ms.Len(); i++ {
				m := ms.Get(i)
				if m.IsMapEntry() {
					continue
				}
				check(m)
				for j := 0; j < m.Fields().Len(); j++ {
					check(m.Fields().Get(j))
				}
				enums(m.Enums())
				messages(m.Messages())
			}
		}
		for i := 0; i < fd.Services().Len(); i++ {
			s := fd.Services().Get(i)
			check(s)
			for j := 0; j < s.Methods().Len(); j++ {
				check(s.Methods().Get(j))
			}
		}
		enums(fd.Enums())
		messages(fd.Messages())
	}
	if n < 100 {
		t.Errorf("checked only %d elements: is the descriptor set missing files?", n)
	}
}
