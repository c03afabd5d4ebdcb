// Command validate checks Envoy v3 bootstrap files against Envoy's own API types
// and validation rules (go-control-plane), including every typed_config packed
// in an Any, which ValidateAll alone does not descend into. It also checks that
// every Kubernetes manifest document names its apiVersion, kind and metadata.name.
//
// Usage: validate -envoy DIR -k8s DIR
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// The extensions the generated configs use in typed_config: their types must be
	// registered for the Any payloads to be unpacked and validated.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

type validatorAll interface{ ValidateAll() error }

// ValidateBootstrap parses one bootstrap (YAML or JSON) strictly and validates it and every Any inside.
func ValidateBootstrap(data []byte) error {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fmt.Errorf("yaml: %w", err)
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, &b); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if err := b.ValidateAll(); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return validateAnys(b.ProtoReflect(), "bootstrap")
}

// validateAnys walks every field; each Any is unpacked, validated and walked in turn.
func validateAnys(m protoreflect.Message, at string) error {
	var errs []error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		path := at + "." + string(fd.Name())
		visit := func(msg protoreflect.Message, p string) {
			if err := checkMessage(msg, p); err != nil {
				errs = append(errs, err)
			}
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visit(l.Get(i).Message(), fmt.Sprintf("%s[%d]", path, i))
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					visit(mv.Message(), fmt.Sprintf("%s[%v]", path, k.Interface()))
					return true
				})
			}
		default:
			visit(v.Message(), path)
		}
		return true
	})
	return errors.Join(errs...)
}

func checkMessage(msg protoreflect.Message, path string) error {
	if a, ok := msg.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s: cannot unpack %s: %w", path, a.GetTypeUrl(), err)
		}
		if v, ok := inner.(validatorAll); ok {
			if err := v.ValidateAll(); err != nil {
				return fmt.Errorf("%s (%s): %w", path, a.GetTypeUrl(), err)
			}
		}
		return validateAnys(inner.ProtoReflect(), path+"<"+string(proto.MessageName(inner))+">")
	}
	return validateAnys(msg, path)
}

// ValidateManifests checks each YAML document of a Kubernetes manifest file.
func ValidateManifests(data []byte) error {
	var errs []error
	for i, doc := range bytes.Split(data, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			continue
		}
		meta, _ := obj["metadata"].(map[string]any)
		if obj["apiVersion"] == nil || obj["kind"] == nil || meta == nil || meta["name"] == nil {
			errs = append(errs, fmt.Errorf("document %d: needs apiVersion, kind and metadata.name", i))
		}
	}
	return errors.Join(errs...)
}

func files(dir string) []string {
	var out []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

func main() {
	envoyDir := flag.String("envoy", "mesh/envoy", "folder of Envoy bootstrap YAML files")
	k8sDir := flag.String("k8s", "mesh/k8s", "folder of Kubernetes manifests")
	flag.Parse()
	failed := false
	check := func(kind string, fs []string, fn func([]byte) error) {
		if len(fs) == 0 {
			fmt.Printf("FAIL no %s files found\n", kind)
			failed = true
		}
		for _, f := range fs {
			data, err := os.ReadFile(f)
			if err == nil {
				err = fn(data)
			}
			if err != nil {
				failed = true
				fmt.Printf("FAIL %s\n  %v\n", f, strings.ReplaceAll(err.Error(), "\n", "\n  "))
			} else {
				fmt.Printf("ok   %s\n", f)
			}
		}
	}
	check("envoy", files(*envoyDir), ValidateBootstrap)
	check("k8s", files(*k8sDir), ValidateManifests)
	if failed {
		os.Exit(1)
	}
}
