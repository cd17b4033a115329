#!/bin/bash
# Copy compose-spec.json from the compose-go Go module at the given version (see SOURCE.md).
set -euo pipefail
version="${1:?usage: refresh.sh vX.Y.Z}"
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
dir="$(cd "$tmp" && GOPATH="$tmp/gopath" GOFLAGS=-modcacherw go mod download -json \
  "github.com/compose-spec/compose-go/v2@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
cp "$dir/schema/compose-spec.json" "$here/compose-spec.json"
chmod 644 "$here/compose-spec.json"
sha256sum "$here/compose-spec.json"
