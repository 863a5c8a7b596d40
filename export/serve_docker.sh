#!/usr/bin/env bash
# Serve a tfp-realnvp export with the official tensorflow/serving Docker image.
# Run with --help for usage.
set -euo pipefail

readonly PROG="${0##*/}"
MODEL_NAME="${MODEL_NAME:-realnvp}"
GRPC_PORT="${GRPC_PORT:-8500}"
REST_PORT="${REST_PORT:-8501}"
TF_SERVING_IMAGE="${TF_SERVING_IMAGE:-tensorflow/serving}"
TF_SERVING_TAG="${TF_SERVING_TAG:-latest}"
DOCKER="${DOCKER:-docker}"

usage() {
  cat <<EOF
Usage: $PROG [--gpu] [--print] [BASE_DIR] [-- SERVER_FLAGS...]

Run $TF_SERVING_IMAGE:$TF_SERVING_TAG on the export base directory BASE_DIR (default:
./exports), which holds BASE_DIR/$MODEL_NAME/<version>/ as written by 'tfp-realnvp export' or
'tfp-realnvp fit --export'. BASE_DIR/$MODEL_NAME is mounted read-only at
/models/$MODEL_NAME; gRPC is published on port $GRPC_PORT, REST on port $REST_PORT.

Options:
  --gpu        Use the '-gpu' variant of the image tag and pass '--gpus all' to docker.
  --print      Print the docker command and exit.
  -h, --help   Show this help.
  -- FLAGS...  Everything after '--' is appended to the tensorflow_model_server command line
               inside the container, e.g. -- --rest_api_timeout_in_ms=5000

Environment:
  TF_SERVING_TAG    image tag (default: latest). The server must be built from a TensorFlow
                    at least as new as the one that wrote the export (recorded in
                    <version>/assets.extra/export_info.json). A graph written by a newer
                    TensorFlow can fail to load on an older server with
                    "NodeDef mentions attr ... not in Op". 'latest' is the newest *release*
                    (2.20 when this was written) and may be older than your TensorFlow: then
                    use TF_SERVING_TAG=nightly, or export with a matching older TensorFlow.
  TF_SERVING_IMAGE  image name (default: tensorflow/serving)
  MODEL_NAME        model name, the folder under BASE_DIR (default: realnvp)
  GRPC_PORT, REST_PORT  host ports to publish (default: 8500, 8501)
  DOCKER            docker client to run (default: docker; 'podman' works too)
EOF
}

# shellcheck source=export/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gpu=0
print_only=0
base_dir=""
extra_flags=()

while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --gpu) gpu=1 ;;
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

# --- the export ----------------------------------------------------------------------------
locate_export "$base_dir"

# --- version skew --------------------------------------------------------------------------
export_tf="$(export_tensorflow_version)"
if [[ -n "$export_tf" ]]; then
  tag_version="${TF_SERVING_TAG%%-*}" # 2.20.0-gpu -> 2.20.0
  if [[ "$tag_version" =~ ^[0-9]+(\.[0-9]+)*$ ]]; then
    version_at_least "$tag_version" "$export_tf" ||
      warn "version $latest_version was exported with TensorFlow $export_tf, newer than the
  server in $TF_SERVING_IMAGE:$TF_SERVING_TAG; loading may fail with \"NodeDef mentions attr
  ... not in Op\". Use TF_SERVING_TAG=nightly (or a release >= $export_tf)."
  elif [[ "$TF_SERVING_TAG" == latest* ]]; then
    warn "version $latest_version was exported with TensorFlow $export_tf. If the newest
  TF Serving release (tag '$TF_SERVING_TAG') is older than that, the load fails with
  \"NodeDef mentions attr ... not in Op\": then run again with TF_SERVING_TAG=nightly."
  fi
fi

# --- the command ---------------------------------------------------------------------------
tag="$TF_SERVING_TAG"
gpu_flags=()
if ((gpu)); then
  [[ "$tag" == *-gpu ]] || tag="$tag-gpu"
  gpu_flags=(--gpus all)
fi
cmd=(
  "$DOCKER" run --rm --init
  ${gpu_flags[@]+"${gpu_flags[@]}"}
  -p "$GRPC_PORT:8500" -p "$REST_PORT:8501"
  -v "$model_dir:/models/$MODEL_NAME:ro"
  -e "MODEL_NAME=$MODEL_NAME"
  "$TF_SERVING_IMAGE:$tag"
  ${extra_flags[@]+"${extra_flags[@]}"}
)

if ((print_only)); then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi

command -v -- "$DOCKER" >/dev/null ||
  die "'$DOCKER' not found: install Docker (or set DOCKER=podman), or use a local
  tensorflow_model_server binary with export/serve_local.sh"

echo "$PROG: serving '$model_dir' (newest version $latest_version) as '$MODEL_NAME' from" \
  "$TF_SERVING_IMAGE:$tag: gRPC localhost:$GRPC_PORT," \
  "REST http://localhost:$REST_PORT/v1/models/$MODEL_NAME" >&2
exec "${cmd[@]}"
