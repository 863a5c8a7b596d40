#!/usr/bin/env bash
# Talk to a served tfp-realnvp export over TensorFlow Serving's REST API with curl.
# Run with --help for usage.
set -euo pipefail

readonly PROG="${0##*/}"
REQUESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/requests"
readonly REQUESTS_DIR
SERVING_HOST="${SERVING_HOST:-localhost}"
REST_PORT="${REST_PORT:-8501}"
MODEL_NAME="${MODEL_NAME:-realnvp}"
MODEL_VERSION="${MODEL_VERSION:-}"
readonly ALL_EXAMPLES=(status metadata log_prob sample encode decode wrong_shape)

usage() {
  cat <<EOF
Usage: $PROG [EXAMPLE...]

Send example requests to http://$SERVING_HOST:$REST_PORT/v1/models/$MODEL_NAME and print
the answers. EXAMPLE is any of: ${ALL_EXAMPLES[*]} (default: all of them), or
table_log_prob for the export of a mixed table.
The request bodies are the files in $REQUESTS_DIR.

Environment:
  SERVING_HOST   server host (default: localhost)
  REST_PORT      REST port (default: 8501)
  MODEL_NAME     model name (default: realnvp)
  MODEL_VERSION  ask one version, /versions/N (default: the newest loaded one)
EOF
}

model_url="http://$SERVING_HOST:$REST_PORT/v1/models/$MODEL_NAME"
[[ -z "$MODEL_VERSION" ]] || model_url+="/versions/$MODEL_VERSION"

# Prints the response body, then the HTTP status on its own line. A failed request (HTTP 4xx,
# 5xx) still shows its body, which holds the server's {"error": "..."} message.
# Prints a command line the way one would type it, single-quoting words that need it.
print_command() {
  local word line="\$"
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9@%+=:,./_-]+$ ]]; then
      line+=" $word"
    else
      line+=" '${word//\'/\'\\\'\'}'"
    fi
  done
  echo "$line" >&2
}

show() {
  print_command curl "$@"
  curl --silent --show-error --write-out '\n[HTTP %{http_code}]\n' "$@"
  echo
}

post() { # post BODY: a JSON string, or @FILE
  show -X POST -H 'Content-Type: application/json' --data "$1" "$model_url:predict"
}

run_example() {
  case "$1" in
    # Version states: "AVAILABLE" once the model has loaded (and warmed up).
    status) show "$model_url" ;;
    # The signatures with their input/output names, dtypes and shapes.
    metadata) show "$model_url/metadata" ;;
    # Row format ("instances") -> {"predictions": [lp_1, ..., lp_N]}
    log_prob) post "@$REQUESTS_DIR/log_prob.json" ;;
    # Columnar format ("inputs"), the only one that can carry the scalar num_samples
    # -> {"outputs": [[x_11, x_12], ..., [x_51, x_52]]}; the same seed gives the same samples.
    sample) post "@$REQUESTS_DIR/sample.json" ;;
    # -> {"predictions": [[z_11, z_12], ...]}
    encode) post "@$REQUESTS_DIR/encode.json" ;;
    # -> {"predictions": [[x_11, x_12], ...]}
    decode) post "@$REQUESTS_DIR/decode.json" ;;
    # A mixed table's export (named columns, labels as text; not in the default list: the
    # flow examples above are for numeric exports) -> {"predictions": [lp_1, lp_2, lp_3]}
    table_log_prob) post "@$REQUESTS_DIR/table_log_prob.json" ;;
    # A point of the wrong width: HTTP 400 and {"error": "..."} naming the expected shape.
    wrong_shape) post '{"signature_name": "log_prob", "instances": [{"x": [0.0, 0.5, 1.0]}]}' ;;
    *) usage >&2; echo "$PROG: error: unknown example '$1'" >&2; exit 1 ;;
  esac
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac
command -v curl >/dev/null || { echo "$PROG: error: curl not found" >&2; exit 1; }

if (($# == 0)); then
  set -- "${ALL_EXAMPLES[@]}"
fi
for example in "$@"; do
  echo "== $example" >&2
  run_example "$example"
done
