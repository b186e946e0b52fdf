#!/usr/bin/env bash
# Builds the .deb of ocalad, ocala and ocala-sim with `cargo deb`: the binaries, the systemd
# unit, a commented example configuration, shell completions and man pages generated from
# the command-line definitions. PROFILE=dev packages the debug build (for tests); the
# default is the release build. Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/../.."
PROFILE=${PROFILE:-release}
DIR=$([ "$PROFILE" = dev ] && echo debug || echo release)
cargo build -q --profile "$PROFILE" -p ocala-mio -p ocala-sim --bins
ASSETS=target/deb-assets
rm -rf "$ASSETS"
mkdir -p "$ASSETS/completions/bash" "$ASSETS/completions/zsh" "$ASSETS/completions/fish" "$ASSETS/man"
for bin in ocala ocala-sim; do
    "target/$DIR/$bin" completions bash >"$ASSETS/completions/bash/$bin"
    "target/$DIR/$bin" completions zsh >"$ASSETS/completions/zsh/_$bin"
    "target/$DIR/$bin" completions fish >"$ASSETS/completions/fish/$bin.fish"
    "target/$DIR/$bin" man >"$ASSETS/man/$bin.1"
done
target/$DIR/ocalad --completions bash >"$ASSETS/completions/bash/ocalad"
target/$DIR/ocalad --completions zsh >"$ASSETS/completions/zsh/_ocalad"
target/$DIR/ocalad --completions fish >"$ASSETS/completions/fish/ocalad.fish"
target/$DIR/ocalad --man >"$ASSETS/man/ocalad.1"
gzip -9n "$ASSETS"/man/*.1
# A test package (dev) is compressed fast; a release package small.
FAST=$([ "$PROFILE" = dev ] && echo --fast || true)
cargo deb -p ocala-mio --no-build --profile "$PROFILE" $FAST --output target/debian/ 2>&1 | tail -1
