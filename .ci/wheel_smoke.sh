#!/usr/bin/env bash
# The package as a user gets it: build the wheel, install it into a fresh virtual environment and
# run the smoke suite from an empty directory, so nothing is read from the checkout. The fresh venv
# borrows the project venv's third-party packages (a .pth line) instead of downloading them again;
# il_toolkit itself comes from the wheel only.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip wheel . --no-deps --no-build-isolation -q -w "$work/dist"
.venv/bin/python -m venv "$work/venv"
deps=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
own=$("$work/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$deps" > "$own/_il_toolkit_deps.pth"
"$work/venv/bin/python" -m pip install -q --no-deps "$work"/dist/*.whl
mkdir "$work/empty" && cd "$work/empty"
where=$("$work/venv/bin/python" -c "import il_toolkit, os; print(os.path.dirname(il_toolkit.__file__))")
case "$where" in "$work"/venv/*) ;; *) echo "il_toolkit was imported from $where, not the wheel" >&2; exit 1 ;; esac
MINARI_DATASETS_PATH="$work/minari" WANDB_MODE=offline "$work/venv/bin/il-bench" run smoke --no-progress \
    --leaderboard output/bench/smoke_leaderboard
test -s output/bench/smoke.jsonl && test -s output/bench/smoke_leaderboard/index.html
echo "wheel smoke test passed: il-bench run smoke from the installed wheel, in an empty directory"
