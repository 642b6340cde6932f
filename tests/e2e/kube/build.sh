#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager and kubectl from the release go.mod pins, once,
# into a cache outside the repo keyed by that release; later runs reuse it. Prints the directory.
#
#   tests/e2e/kube/build.sh            # -> ~/.cache/gatekeeper/kube/v1.37.2
#   GATEKEEPER_KUBE_CACHE=/somewhere tests/e2e/kube/build.sh
set -euo pipefail
cd "$(dirname "$0")"
version="$(sed -n 's/^[[:space:]]*\(require \)\?k8s.io\/kubernetes \(v1\.[0-9.]*\)$/\2/p' go.mod)"
[[ -n "$version" ]] || { echo "build.sh: go.mod pins no k8s.io/kubernetes release; run pin.sh" >&2; exit 1; }
dir="${GATEKEEPER_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gatekeeper/kube}/${version}"
binaries=(kube-apiserver kube-controller-manager kubectl)
stamp="$(sha256sum go.mod go.sum cmd/*/main.go | sha256sum | cut -c1-16)"
if [[ "$(cat "$dir/.stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "$dir"
    exit 0
fi
minor="${version#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=${version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done
started=$SECONDS
mkdir -p "$dir"
work="$(mktemp -d "$dir/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "build.sh: building Kubernetes ${version} (${binaries[*]}) into $dir; the first build takes minutes" >&2
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/" ./cmd/...
for binary in "${binaries[@]}"; do
    mv -f "$work/$binary" "$dir/$binary"
done
echo "$stamp" > "$dir/.stamp"
echo "build.sh: built in $((SECONDS - started)) s" >&2
echo "$dir"
