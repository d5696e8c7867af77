#!/usr/bin/env bash
# `make test`: shellcheck on every shell script of the checkout (tracked, or new and not ignored),
# found by what it is rather than by a list: a *.sh name, a shell on its #! line, or a
# `# shellcheck shell=` directive (files that are only sourced). -x follows what they source.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v shellcheck >/dev/null || { echo "lint-shell.sh: shellcheck is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }

shebang='^#!.*[/ ](ba|da|k)?sh([[:space:]]|$)'
files=()
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  if [[ "$f" == *.sh ]] || [[ "$(head -n 1 "$f")" =~ $shebang ]] || grep -q '^# shellcheck shell=' "$f"; then
    files+=("$f")
  fi
done < <({
  git ls-files -z --cached --others --exclude-standard -- '*.sh'
  git grep -lzIE --untracked -e "$shebang" -e '^# shellcheck shell='
} | sort -zu)
[ ${#files[@]} -gt 0 ] || { echo "lint-shell.sh: no shell scripts found" >&2; exit 1; }
shellcheck -x "${files[@]}"
echo "shellcheck: ${#files[@]} shell scripts, no findings"
