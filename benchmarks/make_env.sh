#!/usr/bin/env bash
# One command that makes the benchmarks' own environment: quicklearn (editable, with its [segment] extra for
# segment.py) plus the tools it is compared with: fastai 2.8.12, scikit-learn; Keras 3 with grain, so
# bad_inputs_vs.py runs Keras on the torch backend without TensorFlow; scikit-surprise (SVD for collab.py; it builds
# from source, so it needs a C compiler); islp (the ISLP book's tables: tabular.py's suite) and lightgbm
# (tabular.py's second boosting model); psutil for peak-memory readings. None of these is a quicklearn dependency.
#
#   bash benchmarks/make_env.sh        # -> benchmarks/.venv
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv benchmarks/.venv
benchmarks/.venv/bin/pip install -q --upgrade pip
benchmarks/.venv/bin/pip install -q -e '.[test,segment]' 'fastai==2.8.12' psutil 'keras==3.15.1' 'grain==0.2.18' 'scikit-surprise==1.1.5' islp lightgbm
KERAS_BACKEND=torch benchmarks/.venv/bin/python -c "import fastai, quicklearn, psutil, keras, grain, surprise, ISLP, lightgbm, segmentation_models_pytorch; print('benchmark env ready: fastai', fastai.__version__, '/ keras', keras.__version__)"
