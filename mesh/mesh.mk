# Mesh targets, included by the main Makefile.
MESH_TMP := $(CURDIR)/var/mesh-check

.PHONY: mesh-gen mesh-validate

## mesh-gen: regenerate Envoy bootstraps and service manifests from mesh/topology.yaml
mesh-gen: deps
	node_modules/.bin/tsx mesh/gen.ts mesh

## mesh-validate: fail if generated files are stale, then validate them against Envoy's v3 API (go-control-plane)
mesh-validate: deps
	rm -rf $(MESH_TMP) && mkdir -p $(MESH_TMP)
	node_modules/.bin/tsx mesh/gen.ts $(MESH_TMP)
	diff -r mesh/envoy $(MESH_TMP)/envoy
	diff mesh/k8s/services.yaml $(MESH_TMP)/k8s/services.yaml
	cd mesh/validate && go test ./... && go run . -envoy ../envoy -k8s ../k8s
