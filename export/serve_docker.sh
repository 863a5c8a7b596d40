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
Usage: $PROG [--gpu] [--batching] [--print] [BASE_DIR] [-- SERVER_FLAGS...]

Run $TF_SERVING_IMAGE:$TF_SERVING_TAG on the export base directory BASE_DIR (default:
./exports), which holds BASE_DIR/$MODEL_NAME/<version>/ as written by 'tfp-realnvp export' or
'tfp-realnvp fit --export'. BASE_DIR/$MODEL_NAME is mounted read-only at
/models/$MODEL_NAME; gRPC is published on port $GRPC_PORT, REST on port $REST_PORT.

Options:
  --gpu        Use the '-gpu' variant of the image tag and pass '--gpus all' to docker.
  --batching   Server-side batching: mount export/batching_parameters.txt and pass
               --enable_batching --batching_parameters_file (see export/README.md).
  --print      Print the docker command and exit.
  -h, --help   Show this help.
  -- FLAGS...  Everything after '--' is appended to the tensorflow_model_server command line
               inside the container, e.g. -- --rest_api_timeout_in_ms=5000

Environment:
  TF_SERVING_TAG    image tag (default: latest, the newest release: 2.20 when this was
                    written). Exports were tested on the loaders of older TensorFlow releases
                    (the table in export/README.md; the oldest is recorded in
                    <version>/assets.extra/export_info.json); the script warns for a tag older
                    than that, where loading may fail with "NodeDef mentions attr ... not in Op".
  TF_SERVING_IMAGE  image name (default: tensorflow/serving)
  MODEL_NAME        model name, the folder under BASE_DIR (default: realnvp)
  GRPC_PORT, REST_PORT  host ports to publish (default: 8500, 8501)
  DOCKER            docker client to run (default: docker; 'podman' works too)
EOF
}

# shellcheck source=export/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gpu=0
batching=0
print_only=0
base_dir=""
extra_flags=()

while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --gpu) gpu=1 ;;
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

# --- the export ----------------------------------------------------------------------------
locate_export "$base_dir"

# --- version skew --------------------------------------------------------------------------
tag_version="${TF_SERVING_TAG%%-*}" # 2.20.0-gpu -> 2.20.0
if [[ "$tag_version" =~ ^[0-9]+(\.[0-9]+)*$ ]]; then
  warn_if_untested "$tag_version" "$TF_SERVING_IMAGE:$TF_SERVING_TAG"
elif [[ "$TF_SERVING_TAG" == latest* ]]; then
  # 'latest' is the newest release; the newest one seen when this was written:
  warn_if_untested "$NEWEST_SERVING_RELEASE_SEEN" "$TF_SERVING_IMAGE:$TF_SERVING_TAG (TF Serving $NEWEST_SERVING_RELEASE_SEEN when this was written)"
fi

# --- the command ---------------------------------------------------------------------------
tag="$TF_SERVING_TAG"
gpu_flags=()
if ((gpu)); then
  [[ "$tag" == *-gpu ]] || tag="$tag-gpu"
  gpu_flags=(--gpus all)
fi
batching_mount=()
batching_flags=()
if ((batching)); then
  batching_mount=(-v "$BATCHING_PARAMETERS:/models/batching_parameters.txt:ro")
  batching_flags=(--enable_batching --batching_parameters_file=/models/batching_parameters.txt)
fi
cmd=(
  "$DOCKER" run --rm --init
  ${gpu_flags[@]+"${gpu_flags[@]}"}
  -p "$GRPC_PORT:8500" -p "$REST_PORT:8501"
  -v "$model_dir:/models/$MODEL_NAME:ro"
  ${batching_mount[@]+"${batching_mount[@]}"}
  -e "MODEL_NAME=$MODEL_NAME"
  "$TF_SERVING_IMAGE:$tag"
  ${batching_flags[@]+"${batching_flags[@]}"}
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
