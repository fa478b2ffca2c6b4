#!/usr/bin/env bash
# Builds the server from exactly what the Dockerfile's build stage copies (its COPY lines),
# in a clean folder, so a path the build needs but the Dockerfile does not copy fails here.
# No Docker engine is needed: the COPY lines are replayed with cp, and the build runs with
# the same cargo command as the Dockerfile (a debug build into the repository's own target
# folder, so only the workspace's crates compile again).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CONTEXT=$(mktemp -d)
trap 'rm -rf "$CONTEXT"' EXIT

stage=build
in_stage=false
while read -r keyword rest; do
  case "$keyword" in
    FROM)
      # Only the build stage's COPY lines (the runtime stage copies from it).
      if [[ "$rest" == *" AS $stage" ]]; then in_stage=true; else in_stage=false; fi ;;
    COPY)
      $in_stage || continue
      [[ "$rest" == --from=* ]] && continue
      read -r -a parts <<< "$rest"
      dest=${parts[-1]}
      unset 'parts[-1]'
      for src in "${parts[@]}"; do
        [ -e "$src" ] || { echo "the Dockerfile copies $src, which does not exist" >&2; exit 1; }
        target="$CONTEXT/${dest#./}"
        if [[ "$dest" == */ || "$dest" == "./" ]]; then
          mkdir -p "$target"
          cp -R "$src" "$target"
        else
          mkdir -p "$(dirname "$target")"
          cp -R "$src" "$target"
        fi
      done ;;
  esac
done < Dockerfile

# What .dockerignore leaves out must not be needed either.
find "$CONTEXT" -name node_modules -prune -exec rm -rf {} +
cmd=$(sed -n 's/^RUN \(cargo build .*\)$/\1/p' Dockerfile | sed 's/--release //')
[ -n "$cmd" ] || { echo "no cargo build line in the Dockerfile" >&2; exit 1; }
echo "building in a context made of the Dockerfile's COPY lines: $cmd"
(cd "$CONTEXT" && CARGO_TARGET_DIR="$ROOT/target" $cmd)
echo "docker context: every path the build needs is copied"
