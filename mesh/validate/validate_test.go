package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func generated(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "envoy", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestGeneratedConfigsPass(t *testing.T) {
	for _, name := range []string{"edge.yaml", "chat.yaml", "presence.yaml", "message-store.yaml", "notifier.yaml"} {
		if err := ValidateBootstrap([]byte(generated(t, name))); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func mustFail(t *testing.T, what, config, want string) {
	t.Helper()
	err := ValidateBootstrap([]byte(config))
	if err == nil {
		t.Fatalf("%s: expected a validation error", what)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: error %q does not mention %q", what, err, want)
	}
}

func TestUnknownFieldIsRefused(t *testing.T) {
	cfg := strings.Replace(generated(t, "chat.yaml"), "lb_policy: ROUND_ROBIN", "lb_policy: ROUND_ROBIN\n      no_such_field: 1", 1)
	mustFail(t, "unknown field", cfg, "no_such_field")
}

func TestTopLevelRuleViolationIsRefused(t *testing.T) {
	// A cluster's connect_timeout must be > 0.
	cfg := strings.Replace(generated(t, "chat.yaml"), "connect_timeout: 1s", "connect_timeout: -1s", 1)
	mustFail(t, "negative timeout", cfg, "ConnectTimeout")
}

func TestRuleViolationInsideTypedConfigIsRefused(t *testing.T) {
	// HttpConnectionManager.stat_prefix must not be empty: only visible after unpacking the Any.
	cfg := strings.Replace(generated(t, "chat.yaml"), "stat_prefix: inbound_chat", `stat_prefix: ""`, 1)
	mustFail(t, "empty stat_prefix inside typed_config", cfg, "StatPrefix")
}

func TestUnknownFieldInsideTypedConfigIsRefused(t *testing.T) {
	cfg := strings.Replace(generated(t, "chat.yaml"), "require_client_certificate: true", "require_client_certificate: true\n              not_a_tls_field: true", 1)
	mustFail(t, "unknown field in typed_config", cfg, "not_a_tls_field")
}

func TestManifestsNeedNames(t *testing.T) {
	if err := ValidateManifests([]byte("apiVersion: v1\nkind: Service\nmetadata: {}\n")); err == nil {
		t.Fatal("expected an error for a manifest without metadata.name")
	}
}
