# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced (bash) by fetch-kernel.sh, build-mtty.sh and build-kernel.sh with APTDIR
# set: the options that point apt at the private configuration fetch-kernel.sh
# writes under the cache (the system's apt state is never touched), and apt_quiet.
# shellcheck shell=bash
APT_OPTS=(
    -o "Dir::Etc::SourceList=$APTDIR/sources.list"
    -o "Dir::Etc::SourceParts=$APTDIR/parts"
    -o "Dir::Etc::Preferences=$APTDIR/preferences"
    -o "Dir::Etc::PreferencesParts=$APTDIR/prefs.d"
    -o "Dir::State::Lists=$APTDIR/lists"
    -o "Dir::Cache=$APTDIR/cache"
    -o "APT::Sandbox::User=root"
    -o "Acquire::Retries=3"
)
# apt_quiet COMMAND...: runs it; its output only on failure
apt_quiet() {
    local out rc=0
    out=$(mktemp)
    "$@" >"$out" 2>&1 </dev/null || rc=$?
    if [ "$rc" -ne 0 ]; then cat "$out" >&2; fi
    rm -f "$out"
    return "$rc"
}
