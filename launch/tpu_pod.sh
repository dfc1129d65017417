#!/usr/bin/env bash
# One thesis_jax binary on every worker of a Cloud TPU VM pod slice (v4-32, v5p-64, ...).
#
#   export TPU_NAME=thesis-jax ZONE=us-central2-b          # PROJECT=... if not gcloud's default
#   launch/tpu_pod.sh create                  # TPU_TYPE (default v4-32), RUNTIME (tpu-ubuntu2204-base)
#   launch/tpu_pod.sh install                 # this checkout (committed tree) + deps on all workers
#   METHOD=dann PRESET=mnist_mnistm WORKDIR=/mnt/shared/runs/dann \
#       launch/tpu_pod.sh run --config.data_dir=/mnt/shared/tfds
#   launch/tpu_pod.sh logs                    # follow worker 0's log (metrics come from worker 0)
#   launch/tpu_pod.sh stop                    # end the run on every worker (it checkpoints)
#   launch/tpu_pod.sh delete
#
# `run` starts the same command on every worker at once, in the background (it survives the ssh
# session). THESIS_JAX_DISTRIBUTED=1 makes thesis_jax call jax.distributed.initialize() without
# arguments: on a TPU VM, JAX finds the workers, this worker's id and the coordinator (worker 0,
# port 8482) through the metadata server.
#
# WORKDIR must be a folder every worker sees at the same path: a Filestore (NFS) share or a
# gcsfuse bucket mounted on all workers (checkpoints are written by all of them together). `run`
# checks that before it starts. The same command again resumes from the newest checkpoint.

set -euo pipefail

COMMAND=${1:-}
shift || true
: "${TPU_NAME:?set TPU_NAME to the TPU VM name}"
: "${ZONE:?set ZONE to the TPU zone, e.g. us-central2-b}"
METHOD=${METHOD:-dann}
PRESET=${PRESET:-digits}
REMOTE_DIR=${REMOTE_DIR:-thesis_jax}  # the checkout on each worker, relative to the home folder

GCLOUD_FLAGS=(--zone="$ZONE")
if [[ -n "${PROJECT:-}" ]]; then
    GCLOUD_FLAGS+=(--project="$PROJECT")
fi

on_workers() {  # on_workers WORKERS COMMAND: run a bash command on the workers (all, 0, ...)
    gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${GCLOUD_FLAGS[@]}" --worker="$1" \
        --command="$2"
}

case "$COMMAND" in
    create)
        gcloud compute tpus tpu-vm create "$TPU_NAME" "${GCLOUD_FLAGS[@]}" \
            --accelerator-type="${TPU_TYPE:-v4-32}" --version="${RUNTIME:-tpu-ubuntu2204-base}"
        ;;
    install)
        # The committed tree of this checkout; commit (or stash) local edits first.
        repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
        archive=$(mktemp -d)/thesis_jax.tar.gz
        git -C "$repo" archive --format=tar.gz -o "$archive" HEAD
        gcloud compute tpus tpu-vm scp "$archive" "$TPU_NAME":thesis_jax.tar.gz \
            "${GCLOUD_FLAGS[@]}" --worker=all
        # Python >= 3.12 (current JAX) through uv; the TPU images ship an older Python.
        on_workers all "set -e
            mkdir -p ~/$REMOTE_DIR && tar -xzf ~/thesis_jax.tar.gz -C ~/$REMOTE_DIR
            export PATH=\$HOME/.local/bin:\$HOME/.cargo/bin:\$PATH
            command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh
            export PATH=\$HOME/.local/bin:\$HOME/.cargo/bin:\$PATH
            cd ~/$REMOTE_DIR
            uv venv --allow-existing --python 3.12 .venv
            uv pip install --python .venv/bin/python -e . 'jax[tpu]'
            .venv/bin/python -c 'import thesis_jax, jax; print(jax.__version__)'"
        ;;
    run)
        : "${WORKDIR:?set WORKDIR to a folder on storage every worker mounts}"
        # Worker 0 leaves a file that every worker must then see: the workdir is really shared.
        marker="$WORKDIR/.tpu_pod_launch_check"
        on_workers 0 "mkdir -p '$WORKDIR' && date > '$marker'"
        on_workers all "test -f '$marker' || {
            echo \"\$(hostname): $WORKDIR is not shared storage (no $marker)\" >&2; exit 1; }"
        args=$(printf ' %q' --config="$PRESET" --workdir="$WORKDIR" "$@")
        on_workers all "cd ~/$REMOTE_DIR && test -f experiments/$METHOD.py || exit 1
            THESIS_JAX_DISTRIBUTED=1 nohup .venv/bin/python -m experiments.$METHOD$args \
                > run.log 2>&1 < /dev/null &
            echo \$! > run.pid"
        echo "started experiments.$METHOD$args on every worker; follow: $0 logs"
        ;;
    logs)
        on_workers "${WORKER:-0}" "tail -n 100 -F ~/$REMOTE_DIR/run.log"
        ;;
    stop)
        on_workers all "test -f ~/$REMOTE_DIR/run.pid && kill -TERM \$(cat ~/$REMOTE_DIR/run.pid) ||
            true"
        ;;
    delete)
        gcloud compute tpus tpu-vm delete "$TPU_NAME" "${GCLOUD_FLAGS[@]}" --quiet
        ;;
    *)
        sed -n '2,12p' "$0" >&2
        exit 2
        ;;
esac
