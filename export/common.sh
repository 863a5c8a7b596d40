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

# export_info_value KEY: a string value of the latest version's
# assets.extra/export_info.json (empty if absent).
export_info_value() {
  local info_file="$model_dir/$latest_version/assets.extra/export_info.json"
  [[ -f "$info_file" ]] || return 0
  sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$info_file" | head -n 1
}

# export_tensorflow_version: the TensorFlow version that wrote the latest version.
export_tensorflow_version() {
  export_info_value tensorflow_version
}

# oldest_tested_tensorflow: the oldest TensorFlow whose TF Serving loaders (TF1 session loader
# and C API, checked by export/check_compat.py) were tested on exports of this kind; for an
# export that does not record it, the TensorFlow that wrote it (the safe rule).
oldest_tested_tensorflow() {
  local oldest
  oldest="$(export_info_value oldest_serving_tensorflow_tested)"
  echo "${oldest:-$(export_tensorflow_version)}"
}

# warn_if_untested SERVER_TF WHERE: warns when a server built from SERVER_TF is older than
# the tested range (oldest tested .. the exporting TensorFlow; newer servers are fine).
warn_if_untested() {
  local server_tf="$1" where="$2" oldest export_tf
  oldest="$(oldest_tested_tensorflow)"
  export_tf="$(export_tensorflow_version)"
  [[ -n "$oldest" && -n "$server_tf" ]] || return 0
  version_at_least "$server_tf" "$oldest" && return 0
  warn "version $latest_version was exported with TensorFlow $export_tf; $where is built from
  TensorFlow $server_tf, older than the tested range (TensorFlow $oldest to $export_tf and newer:
  see export/README.md). Loading may fail with \"NodeDef mentions attr ... not in Op\"; use a
  server built from TensorFlow >= $oldest, or run export/check_compat.py --tensorflow $server_tf."
}

# Batching: the parameters file shipped beside these scripts (see export/README.md).
BATCHING_PARAMETERS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/batching_parameters.txt"

# The newest TensorFlow Serving release seen when this was written ('latest' image tag).
NEWEST_SERVING_RELEASE_SEEN="2.20"
