#!/usr/bin/env bash
# Rewrites the README's demo block (the story's numbers and the table) from what the README's
# first command prints now: tests/readme.rs, which otherwise fails when they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
PRESCALER_UPDATE_README=1 cargo test --release --locked --test integration readme::the_readme_demo_is_what_the_command_prints -- --nocapture
git --no-pager diff --stat README.md || true
