#!/usr/bin/env bash
# Regenerates docs/cli.md from the CLI's own --help (run after npm run build:ts).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo '# Command line'
  echo
  echo 'Every subcommand validates its input before it does any work. An error prints `tabsight: CODE: message` on stderr and exits 1 (130 after Ctrl-C). `pretrain`, `study`, `select --method search`, `embed` and `predict` stop cleanly on Ctrl-C or SIGTERM, after the current step or batch, with a valid checkpoint or no output (a second Ctrl-C quits at once, removing its temporary files); the other commands remove their temporary files (an image cache being converted, a file being written, the run `evaluate --protocol finetune` trains) and die of the signal; a cohort.yaml with several problems prints one line per problem (the first 10, then how many more) after the one `tabsight: ERR_CONFIG:` prefix. A malformed command line (an unknown command or option, a missing required option, a value that is not a number) prints `tabsight: ERR_CONFIG: message` too, followed by the command'"'"'s usage, and exits 1. This page is the `--help` of each command (regenerate it with `bash scripts/cli-doc.sh`).'
  for c in "" info validate "synth cardiac" "synth mnist" pretrain evaluate embed predict export demo select study explain compare; do
    # shellcheck disable=SC2086
    node bin/tabsight.js $c --help >/dev/null 2>&1 || continue
    echo; echo "## tabsight $c"; echo; echo '```'
    # shellcheck disable=SC2086
    node bin/tabsight.js $c --help
    echo '```'
  done
} > docs/cli.md
