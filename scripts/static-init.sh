#!/usr/bin/env bash
# Links wrapix-init, the sandbox's PID 1, as a static executable (glibc's static-pie): it then
# starts without the dynamic loader, libgcc_s or the image's own libc, ~0.4 ms less on every
# launch here (bench/launch.sh), and runs in an image whatever its libc. Cargo cannot link one
# binary of a package statically, so this relinks it after a build; a later plain `cargo
# build` relinks it dynamically again, which works too, only slower to start.
#   scripts/static-init.sh [PROFILE]     (default release; `dev` for target/debug)
# When the static link fails (no libc.a: Debian's libc6-dev has it), the dynamic init is
# rebuilt and this exits 1 with the reason.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
profile="${1:-release}"
dir="${CARGO_TARGET_DIR:-$here/target}/$([ "$profile" = dev ] && echo debug || echo "$profile")"
if ! cargo rustc --quiet --locked --manifest-path "$here/Cargo.toml" -p wrapix-cli \
  --bin wrapix-init --profile "$profile" -- -C target-feature=+crt-static; then
  echo "static-init: cannot link wrapix-init statically (is libc6-dev installed?); keeping the dynamic one" >&2
  cargo build --quiet --locked --manifest-path "$here/Cargo.toml" -p wrapix-cli --bin wrapix-init --profile "$profile"
  exit 1
fi
if readelf -l "$dir/wrapix-init" | grep -q INTERP; then
  echo "static-init: $dir/wrapix-init still asks for a dynamic loader" >&2
  exit 1
fi
