#!/usr/bin/env bash
# Serve a tfp-realnvp export with a locally installed TensorFlow Serving binary.
# Run with --help for usage.
set -euo pipefail

readonly PROG="${0##*/}"
MODEL_NAME="${MODEL_NAME:-realnvp}"
GRPC_PORT="${GRPC_PORT:-8500}"
REST_PORT="${REST_PORT:-8501}"

usage() {
  cat <<EOF
Usage: $PROG [--config] [--policy POLICY] [--batching] [--print] [BASE_DIR] [-- SERVER_FLAGS...]

Start tensorflow_model_server on the export base directory BASE_DIR (default: ./exports),
which holds BASE_DIR/$MODEL_NAME/<version>/ as written by 'tfp-realnvp export' or
'tfp-realnvp fit --export'. gRPC listens on port $GRPC_PORT, REST on port $REST_PORT.

Options:
  --config         Generate a model config file (like export/models.config, but with the
                   absolute base path of this export) and start the server with
                   --model_config_file instead of --model_name/--model_base_path.
  --policy POLICY  Which versions to serve (implies --config):
                     latest   the newest version only (the server's default)
                     all      every version folder
                     1,3      exactly these versions
  --batching       Server-side batching: --enable_batching with export/batching_parameters.txt
                   (batchable signatures only: every one but 'sample'; see export/README.md).
  --print          Print the server command (and the generated config) and exit.
  -h, --help       Show this help.
  -- FLAGS...      Everything after '--' is passed to tensorflow_model_server unchanged,
                   e.g. -- --rest_api_timeout_in_ms=5000

Environment:
  TFP_REALNVP_MODEL_SERVER  path of the tensorflow_model_server binary (default: from PATH)
  MODEL_NAME                model name, the folder under BASE_DIR (default: realnvp)
  GRPC_PORT, REST_PORT      listening ports (default: 8500, 8501)

Both modes hand the server an absolute path: it resolves a relative base path against its
own working directory, not against the config file or this script, so an absolute path is
the only one that means the same thing wherever the server is started from.
EOF
}

# shellcheck source=export/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

use_config=0
batching=0
policy="latest"
print_only=0
base_dir=""
extra_flags=()

while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --config) use_config=1 ;;
    --policy)
      (($# >= 2)) || die "--policy needs a value (latest, all or a list like 1,3)"
      policy="$2"; use_config=1; shift ;;
    --policy=*) policy="${1#--policy=}"; use_config=1 ;;
    --batching) batching=1 ;;
    --print) print_only=1 ;;
    --) shift; extra_flags=("$@"); break ;;
    -*) usage >&2; die "unknown option: $1" ;;
    *)
      [[ -z "$base_dir" ]] || die "more than one BASE_DIR given: '$base_dir' and '$1'"
      base_dir="$1" ;;
  esac
  shift
done
base_dir="${base_dir:-./exports}"
[[ "$policy" =~ ^(latest|all|[0-9]+(,[0-9]+)*)$ ]] ||
  die "--policy must be latest, all or a comma-separated list of versions, not '$policy'"

# --- the export ----------------------------------------------------------------------------
locate_export "$base_dir"

# --- the server binary ---------------------------------------------------------------------
server="${TFP_REALNVP_MODEL_SERVER:-tensorflow_model_server}"
server_path="$(command -v -- "$server" || true)"
if [[ -z "$server_path" ]]; then
  message="TensorFlow Serving binary '$server' not found (set TFP_REALNVP_MODEL_SERVER or PATH).
  It is not on PyPI and no Debian/Ubuntu archive ships it. Get it from Google's apt repository
  (https://storage.googleapis.com/tensorflow-serving-apt, package tensorflow-model-server),
  or run the official Docker image instead: export/serve_docker.sh $base_dir"
  if ((print_only)); then
    warn "$message"
  else
    die "$message"
  fi
  server_path="$server"
fi

# --- version skew: the server's TensorFlow must be in the tested range ----------------------
server_tf=""
if [[ -x "$server_path" ]]; then
  # `--version` prints "TensorFlow ModelServer: X" and "TensorFlow Library: Y".
  server_tf="$("$server_path" --version 2>/dev/null |
    sed -n 's/^TensorFlow Library:[[:space:]]*\([0-9][0-9.]*\).*/\1/p' | head -n 1 || true)"
fi
warn_if_untested "$server_tf" "this server"

# --- the command ---------------------------------------------------------------------------
cmd=("$server_path" "--port=$GRPC_PORT" "--rest_api_port=$REST_PORT")
config_text=""
if ((use_config)); then
  case "$policy" in
    latest) policy_text="latest { num_versions: 1 }" ;;
    all) policy_text="all {}" ;;
    *)
      policy_text="specific {"
      IFS=, read -r -a versions <<<"$policy"
      for version in "${versions[@]}"; do
        [[ -f "$model_dir/$version/saved_model.pb" ]] ||
          warn "version $version not found under '$model_dir'"
        policy_text+=" versions: $((10#$version))"
      done
      policy_text+=" }" ;;
  esac
  # Generated, not edited in place: the checked-in models.config names the Docker path
  # /models/realnvp, and a local server needs this export's absolute path instead.
  config_text="model_config_list {
  config {
    name: \"$MODEL_NAME\"
    base_path: \"$model_dir\"
    model_platform: \"tensorflow\"
    model_version_policy { $policy_text }
  }
}"
  if ((print_only)); then
    config_file="GENERATED_CONFIG_FILE"
  else
    tmp_dir="$(mktemp -d "${TMPDIR:-/tmp}/tfp-realnvp-serving.XXXXXX")"
    trap 'rm -rf "$tmp_dir"' EXIT
    config_file="$tmp_dir/models.config"
    printf '%s\n' "$config_text" >"$config_file"
  fi
  cmd+=("--model_config_file=$config_file")
else
  cmd+=("--model_name=$MODEL_NAME" "--model_base_path=$model_dir")
fi
if ((batching)); then
  cmd+=("--enable_batching" "--batching_parameters_file=$BATCHING_PARAMETERS")
fi
cmd+=(${extra_flags[@]+"${extra_flags[@]}"})

if ((print_only)); then
  [[ -z "$config_text" ]] || printf '# GENERATED_CONFIG_FILE:\n%s\n' "$config_text"
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi

echo "$PROG: serving '$model_dir' (newest version $latest_version) as '$MODEL_NAME':" \
  "gRPC localhost:$GRPC_PORT, REST http://localhost:$REST_PORT/v1/models/$MODEL_NAME" >&2

if ((!use_config)); then
  exec "${cmd[@]}"
fi

# With a generated config the script stays around to delete it when the server stops.
"${cmd[@]}" &
server_pid=$!
# A background child of a non-interactive shell ignores Ctrl-C, so pass it on as SIGTERM.
trap 'kill -TERM "$server_pid" 2>/dev/null || true' INT TERM
status=0
wait "$server_pid" || status=$?
if kill -0 "$server_pid" 2>/dev/null; then # interrupted: let the server finish shutting down
  status=0
  wait "$server_pid" || status=$?
fi
exit "$status"
