#!/usr/bin/env bash
# Gradescope autograder set-up (runs once when the image is built). Gradescope unpacks the
# autograder zip into /autograder/source; make it with:  (cd <repo> && git archive -o autograder.zip HEAD)
# and put gradescope/setup.sh and gradescope/run_autograder at the zip's top level, e.g.
#   cp gradescope/setup.sh gradescope/run_autograder . && zip -r autograder.zip . -x '.venv/*' '.git/*'
set -euo pipefail
apt-get update -q && apt-get install -y -q python3.11 python3.11-venv
cd /autograder/source
python3.11 tasks.py release   # creates .venv from requirements.txt and checks the release builds
