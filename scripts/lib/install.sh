#!/bin/sh
# Installs this cascade bundle: checks that it is for this board's architecture and that
# every file is intact, then (as root) copies it to /opt/cascade and, with --service,
# installs and starts the camera service.
# Usage: ./install.sh [--prefix DIR] [--service]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=/opt/cascade
service=no
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --service) service=yes; shift ;;
    *) echo "install: unknown argument $1 (use --prefix DIR, --service)" >&2; exit 2 ;;
  esac
done

want=@ARCH@
machine=$(uname -m)
case "$machine" in
  aarch64|arm64) have=aarch64 ;;
  armv7l|armv8l|armhf) have=armv7 ;;
  *) have=$machine ;;
esac
if [ "$have" != "$want" ]; then
  # A 64-bit kernel with a 32-bit Pi OS userland reports aarch64 but runs armv7 programs.
  if [ "$want" = armv7 ] && [ "$have" = aarch64 ] && [ "$(getconf LONG_BIT 2>/dev/null)" = 32 ]; then
    :
  else
    echo "install: this bundle is for $want, but this machine is $machine: use cascade-*-$have.tar.gz" >&2
    exit 1
  fi
fi
(cd "$here" && sha256sum -c --quiet SHA256SUMS) || {
  echo "install: the bundle is damaged (checksums differ): download it again" >&2
  exit 1
}
"$here/bin/cascade" --version >/dev/null
mkdir -p "$prefix"
cp -R "$here/." "$prefix/"
echo "install: cascade is in $prefix (try: $prefix/bin/cascade info)"
if [ "$service" = yes ]; then
  cp "$prefix/cascade-camera.service" /etc/systemd/system/
  systemctl daemon-reload
  systemctl enable --now cascade-camera
  echo "install: cascade-camera started (journalctl -u cascade-camera -f)"
fi
