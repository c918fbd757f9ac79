#!/usr/bin/env bash
# The main job: fine-tune EfficientNet-Lite0 (offline ImageNet weights) on a folder of images.
# With no arguments it trains on the bundled ants-vs-bees sample; any arguments go to `quicklearn train`.
#   bash scripts/demo.sh                      # the bundled sample, output in runs/
#   bash scripts/demo.sh --data my_photos/    # your own folder (one sub-folder per class)
set -euo pipefail
source "$(dirname "$0")/_venv.sh" "" editable
exec "$VENV/bin/quicklearn" train "$@"
