# shellcheck shell=bash
# Shared by bin/*; source it, it runs nothing by itself. bin/* run the bundles scripts/build.ts makes
# in dist/ (one node process, no relaying parent, so signals reach it directly), and never a stale
# one: dist/inputs.txt lists every file the bundles were built from, and when one is newer than it
# (or gone) they are rebuilt first, or, where that cannot happen (an install without dev
# dependencies, a read-only tree), the command refuses. The check is one stat per input, a few ms.

# bundles_stale ROOT: true when dist/ is missing or older than one of its inputs.
bundles_stale() {
  local root=$1 stamp="$1/dist/inputs.txt" f inputs
  [ -f "$stamp" ] || return 0
  mapfile -t inputs <"$stamp"
  for f in "${inputs[@]}"; do
    [ -e "$root/$f" ] && ! [ "$root/$f" -nt "$stamp" ] || return 0
  done
  return 1
}

# bundles_build ROOT: rebuilds dist/ (once, when concurrent starts find it stale together).
bundles_build() {
  local root=$1
  if [ ! -f "$root/node_modules/tsx/dist/loader.mjs" ] || [ ! -d "$root/node_modules/esbuild" ]; then
    echo "unibus: dist/ in $root is missing or older than its sources and cannot be built without the dev dependencies (npm ci, then make build)" >&2
    return 1
  fi
  if ! mkdir -p "$root/dist" 2>/dev/null || [ ! -w "$root/dist" ]; then
    echo "unibus: dist/ in $root is missing or older than its sources and cannot be built here (not writable); run make build where it is" >&2
    return 1
  fi
  (
    if command -v flock >/dev/null; then flock 9; fi
    bundles_stale "$root" || exit 0
    # Said on a terminal only: a command's stderr in a pipe is its own (tests compare it whole).
    quiet=--quiet
    if [ -t 2 ]; then echo "unibus: dist/ is older than its sources; rebuilding it" >&2 && quiet=; fi
    node --import "file://$root/node_modules/tsx/dist/loader.mjs" "$root/scripts/build.ts" ${quiet:+"$quiet"} >&2 ||
      { echo "unibus: the build failed (above), and the stale bundles in $root/dist are not run" >&2; exit 1; }
  ) 9>"$root/dist/.build.lock"
}

# bundles_ensure ROOT: dist/ is up to date afterwards, or this fails having said why.
bundles_ensure() {
  if bundles_stale "$1"; then bundles_build "$1"; fi
}
