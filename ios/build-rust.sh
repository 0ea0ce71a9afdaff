#!/usr/bin/env bash
# Builds libsplatcast_ios.a for the platform Xcode is building (device or simulator) and
# copies it where the project links it from. Xcode runs this as a pre-build script.
set -euo pipefail
cd "$(dirname "$0")/rust"
profile=release
case "${PLATFORM_NAME:-iphoneos}" in
  iphoneos) target=aarch64-apple-ios ;;
  iphonesimulator)
    if [ "${NATIVE_ARCH_ACTUAL:-arm64}" = x86_64 ]; then target=x86_64-apple-ios; else target=aarch64-apple-ios-sim; fi ;;
  *) echo "unsupported platform ${PLATFORM_NAME}" >&2; exit 1 ;;
esac
# Xcode's environment points cargo's C compiler at the wrong SDK; clear what confuses it.
env -u SDKROOT -u IPHONEOS_DEPLOYMENT_TARGET cargo build --profile "$profile" --target "$target"
mkdir -p ../build
cp "target/$target/$profile/libsplatcast_ios.a" ../build/libsplatcast_ios.a
