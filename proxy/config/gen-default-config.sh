#!/bin/sh
# gen-default-config.sh CONF - writes C source embedding CONF as the
# proxy's default configuration (default_config_text in config.h).
set -eu
printf '/* Generated from %s by gen-default-config.sh; do not edit. */\n' "$1"
printf '#include "config/config.h"\n\nconst char default_config_text[] =\n'
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/' "$1"
printf '    ;\n'
