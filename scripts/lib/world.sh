# Sourced by scripts/build-{alert,dissector}-examples.sh.
# world_of JCO DIR FILE WANT...: prints the world of component DIR/FILE (by
# `jco wit`: the componentize tools read the WIT themselves, so this catches
# a stale build or a world mismatch rather than trusting them) and fails,
# naming FILE and printing its world, unless it has every WANT line.
world_of() {
  local jco="$1" dir="$2" file="$3" wit want
  shift 3
  # jco reads files through WASI, which only sees paths under the cwd.
  wit=$(cd "$dir" && "$jco" wit "$file")
  for want in "$@"; do
    grep -qF "$want" <<<"$wit" || {
      echo "$file lacks '$want'; its world is:" >&2
      echo "$wit" >&2
      return 1
    }
  done
  printf '%s\n' "$wit"
}
