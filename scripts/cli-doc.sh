#!/usr/bin/env bash
# Regenerates docs/cli.md from the CLI's own --help (run after npm run build:ts).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo '# Command line'
  echo
  echo 'Every subcommand validates its input before it does any work. Errors print as one line, `tabsight: CODE: message`, and exit non-zero (130 after Ctrl-C). This page is the `--help` of each command (regenerate it with `bash scripts/cli-doc.sh`).'
  for c in "" info validate "synth cardiac" "synth mnist" pretrain evaluate embed predict export demo select study explain compare; do
    # shellcheck disable=SC2086
    node bin/tabsight.js $c --help >/dev/null 2>&1 || continue
    echo; echo "## tabsight $c"; echo; echo '```'
    # shellcheck disable=SC2086
    node bin/tabsight.js $c --help
    echo '```'
  done
} > docs/cli.md
