#!/usr/bin/env bash
# Quickstart: install the plugin into .venv and open TensorBoard on demo_logs.
source "$(dirname "$0")/setup.sh"
build_frontend
install_project compare   # scipy: the Compare view
PORT=${PORT:-6006}
echo "TensorBoard with the Health tab: http://localhost:$PORT/#health"
exec .venv/bin/tensorboard --logdir demo_logs --port "$PORT" "$@"
