#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image; the zip made by
#   python -m autograder gradescope --out autograder.zip [--mnist mnist.npz]
# is unpacked into /autograder/source. It sets up the course environment exactly as the README's
# set-up does (python3 tasks.py setup: .venv from requirements.txt, the grader installed, the
# kernel registered) and provides the grading data:
#   - the zip carries data/mnist.npz (made with --mnist): it goes into Keras's cache, or
#   - it does not: Keras downloads MNIST now, while the image is built (Gradescope builds online).
# Either way the grader's source `auto` (c.GradingData.mnist in nbgrader_config.py) then finds
# ~/.keras/datasets/mnist.npz, and students are never graded without their data.
# AUTOGRADER_ROOT (default /autograder) lets a test lay out the same folders elsewhere.
set -euo pipefail
root="${AUTOGRADER_ROOT:-/autograder}"
cd "$root/source"
if ! command -v python3.11 >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3.11 python3.11-venv
fi
python3.11 tasks.py setup
mkdir -p "$HOME/.keras/datasets"
if [ -f data/mnist.npz ]; then
  cp data/mnist.npz "$HOME/.keras/datasets/mnist.npz"
  echo "grading data: data/mnist.npz from the autograder zip"
else
  .venv/bin/python -c "import keras; keras.datasets.mnist.load_data()"
  echo "grading data: downloaded by keras.datasets.mnist.load_data()"
fi
.venv/bin/python -m autograder data    # fails the build (exit 3) if the grader cannot load it
