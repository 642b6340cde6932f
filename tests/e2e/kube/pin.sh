#!/usr/bin/env bash
# Pin the control plane the e2e suite builds: rewrite go.mod and go.sum for one k8s.io/kubernetes
# release. k8s.io/kubernetes replaces its staging modules with relative paths, which do not exist
# in the module cache, so each one is replaced here with its published v0.<minor>.<patch>; the
# list is read from the release's own go.mod, never written by hand.
#
#   tests/e2e/kube/pin.sh v1.37.2
set -euo pipefail
cd "$(dirname "$0")"
version="${1:?usage: pin.sh vX.Y.Z (a k8s.io/kubernetes release)}"
staging="v0.${version#v1.}"
gomod="$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
[[ -f "$gomod" ]] || { echo "pin.sh: go mod download named no go.mod for k8s.io/kubernetes@${version}" >&2; exit 1; }
go_directive="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
{
    echo "// Builds kube-apiserver, kube-controller-manager and kubectl for the e2e suite. Written by pin.sh."
    echo "module gatekeeper.invalid/e2e/kube"
    echo
    echo "go ${go_directive}"
    echo
    echo "require k8s.io/kubernetes ${version}"
    echo
    echo "replace ("
    sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/.*$#\t\1 => \1 '"${staging}"'#p' "$gomod"
    echo ")"
} > go.mod
rm -f go.sum
go mod tidy
echo "pinned k8s.io/kubernetes ${version} (staging modules at ${staging})"
