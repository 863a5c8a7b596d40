# Shared by serve_local.sh and serve_docker.sh (sourced, not run). Needs PROG and MODEL_NAME.

die() {
  echo "$PROG: error: $*" >&2
  exit 1
}

warn() {
  echo "$PROG: warning: $*" >&2
}

# locate_export BASE_DIR: sets base_abs (absolute BASE_DIR), model_dir and latest_version
# (the highest integer folder holding a saved_model.pb), or dies naming what is missing.
locate_export() {
  local base_dir="$1" entry version
  [[ -d "$base_dir" ]] || die "export base directory '$base_dir' does not exist
  (create one with: tfp-realnvp fit --export $base_dir   or   tfp-realnvp export RUN_DIR $base_dir)"
  # Absolute: docker -v takes a relative source as the name of a docker volume.
  base_abs="$(cd "$base_dir" && pwd -P)"
  model_dir="$base_abs/$MODEL_NAME"
  [[ -d "$model_dir" ]] || die "'$model_dir' does not exist: is '$base_dir' an export base directory?"
  latest_version=""
  for entry in "$model_dir"/*/; do
    entry="${entry%/}"
    version="${entry##*/}"
    [[ "$version" =~ ^[0-9]+$ && -f "$entry/saved_model.pb" ]] || continue
    if [[ -z "$latest_version" ]] || ((10#$version > 10#$latest_version)); then
      latest_version="$version"
    fi
  done
  [[ -n "$latest_version" ]] || die "no version folder (<integer>/saved_model.pb) under '$model_dir'"
}

# version_at_least HAVE NEED: HAVE >= NEED, comparing major.minor only.
version_at_least() {
  local have need
  have="$(cut -d. -f1,2 <<<"${1%%[-+]*}")"
  need="$(cut -d. -f1,2 <<<"${2%%[-+]*}")"
  [[ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n 1)" == "$need" ]]
}

# export_tensorflow_version: the TensorFlow version recorded in the latest version's
# assets.extra/export_info.json (empty if absent).
export_tensorflow_version() {
  local info_file="$model_dir/$latest_version/assets.extra/export_info.json"
  [[ -f "$info_file" ]] || return 0
  sed -n 's/.*"tensorflow_version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$info_file" |
    head -n 1
}
