#!/bin/sh
# with-resolved.sh DIR COMMAND...: runs COMMAND beside a real systemd-resolved of its own, in
# a private mount namespace (the caller wraps this in `unshare -m`) on a private D-Bus, so a
# test can check ocalad's split DNS against the real service on a machine that does not run
# systemd. The binaries come from Debian's systemd-resolved package unpacked (not
# installed) under $OCALA_RESOLVED_ROOT (default /opt/ocala-resolved; .ci/run unpacks it).
# resolved drops to the user systemd-resolve, which is added to a private copy of
# /etc/passwd. Everything it writes is under DIR.
set -e
R=${OCALA_RESOLVED_ROOT:-/opt/ocala-resolved}
D=$1
shift
if [ ! -x "$R/lib/systemd/systemd-resolved" ]; then
    echo "no systemd-resolved under $R (apt-get download systemd-resolved; dpkg -x it there)" >&2
    exit 3
fi
mkdir -p "$D"
cp /etc/passwd "$D/passwd"
echo 'systemd-resolve:x:990:990:resolved:/:/usr/sbin/nologin' >>"$D/passwd"
cp /etc/group "$D/group"
echo 'systemd-resolve:x:990:' >>"$D/group"
mount --bind "$D/passwd" /etc/passwd
mount --bind "$D/group" /etc/group
mkdir -p /run/systemd
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir -p /run/systemd/resolve
chown 990:990 /run/systemd/resolve
cat >"$D/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$D/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
CONF
dbus-daemon --config-file="$D/bus.conf" --fork --print-pid >"$D/pids" 2>"$D/bus.log"
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$D/bus"
"$R/lib/systemd/systemd-resolved" >"$D/resolved.log" 2>&1 &
echo $! >>"$D/pids"
export PATH="$R/usr/bin:$PATH"
i=0
until timeout 2 resolvectl status >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 50 ] || { echo "systemd-resolved did not come up" >&2; exit 4; }
    sleep 0.1
done
exec "$@"
