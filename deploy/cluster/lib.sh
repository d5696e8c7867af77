# shellcheck shell=bash
# Shared helpers of the deploy/cluster scripts. Source this file; it runs nothing by itself.

# require_no_placeholders FILE: exits 2, naming every variable or CLUSTER_NODES line of FILE that
# still holds a placeholder in angle brackets (<cluster-name>, <node1-wg-ip>, …); returns 0 when
# none is left. It reads FILE as text and never sources it. Comment lines are ignored.
require_no_placeholders() {
  local file="${1:-}" line code array="" in_array=0 re='<[^<>]+>' decl='^([A-Za-z_][A-Za-z0-9_]*)=(\(?)'
  local -a found=()
  if [[ -z "$file" || ! -f "$file" || ! -r "$file" ]]; then
    printf '%s\n' "cannot read the cluster file ${file:-(none given)}; copy deploy/cluster/cluster.env and fill it in" >&2
    exit 2
  fi
  while IFS= read -r line || [[ -n "$line" ]]; do
    code="${line#"${line%%[![:space:]]*}"}"
    [[ -z "$code" || "$code" == \#* ]] && continue
    code="${code%%[[:space:]]#*}"
    if [[ "$code" =~ $decl ]]; then
      array="${BASH_REMATCH[1]}"
      [[ -n "${BASH_REMATCH[2]}" ]] && in_array=1
      [[ "$code" =~ $re ]] && found+=("$code")
    elif [[ "$code" =~ $re ]]; then
      if ((in_array)); then found+=("$array: $code"); else found+=("$code"); fi
    fi
    if ((in_array)) && [[ "$code" == *")" ]]; then in_array=0; fi
  done <"$file"
  if ((${#found[@]} > 0)); then
    printf '%s\n' "$file still has ${#found[@]} placeholder(s); fill in each of these first:" >&2
    printf '  %s\n' "${found[@]}" >&2
    exit 2
  fi
  return 0
}

# render_unit TEMPLATE USER ETC APP DATA: a unit of deploy/cluster/systemd/ with its @NAME@
# placeholders filled in, on stdout. The deploy installs exactly this; test/systemd-units.test.ts
# checks it with systemd-analyze.
render_unit() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/systemd"
  sed -e "s|@USER@|$2|g" -e "s|@ETC@|$3|g" -e "s|@APP@|$4|g" -e "s|@DATA@|$5|g" "$dir/$1"
}
