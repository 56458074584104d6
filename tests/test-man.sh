#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The man pages: every page lints clean (mandoc -Tlint -W warning, groff -ww, and
# man --warnings where installed: any warning fails), every .so link page points at
# a page that exists, and every symbol of lib/libvfiocpr.sym (all nodes), plus the
# 0.3 calls listed below, has a page (or link) whose NAME section lists it.
# Negative controls: a page with a warning and a symbol without a page are caught.
# .ci/run installs mandoc. Speaks TAP for automake's tap-driver.

top_srcdir=${top_srcdir:-$(dirname "$0")/..}
LC_ALL=C
export LC_ALL
mandir="$top_srcdir/man"
sym="$top_srcdir/lib/libvfiocpr.sym"
# documented as 0.3; listed here so they keep their pages before and after the
# node that exports them lands
EXTRA_SYMBOLS="vfiocpr_fd_lookup vfiocpr_describe vfiocpr_state_describe_variant"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-man.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

pages=$(ls "$mandir"/*.3 "$top_srcdir/examples/vfiocpr-exec/vfiocpr-exec.1" 2>/dev/null)
if [ -z "$pages" ]; then
    echo "Bail out! no pages in $mandir"
    exit 1
fi
have() { command -v "$1" >/dev/null 2>&1; }
is_link() { head -n 1 "$1" | grep -q '^\.so '; }

echo "1..7"
n=0
# lint PAGE: prints every warning of every available linter; fails if any
lint() {
    out="$tmp/lint.out"
    : >"$out"
    if have mandoc; then
        mandoc -Tlint -W warning "$1" >>"$out" 2>&1 || echo "mandoc exit status $?" >>"$out"
    fi
    if have groff; then
        groff -man -ww -z "$1" >>"$out" 2>&1 || echo "groff exit status $?" >>"$out"
    fi
    if have man; then
        MANWIDTH=80 man --warnings -E UTF-8 -l "$1" 2>>"$out" >/dev/null ||
            echo "man exit status $?" >>"$out"
    fi
    sed "s|^|# $(basename "$1"): |" "$out"
    [ ! -s "$out" ]
}

# 1: lint every real page
bad=0 count=0
for p in $pages; do
    is_link "$p" && continue
    count=$((count + 1))
    lint "$p" || bad=$((bad + 1))
done
linters=$(for t in mandoc groff man; do have $t && printf '%s ' $t; done)
if ! have mandoc; then
    echo "# mandoc not installed (Debian: mandoc): linting with ${linters:-nothing}"
fi
if [ -z "$linters" ]; then
    echo "not ok 1 - no linter (mandoc, groff, man) installed"
elif [ "$bad" -eq 0 ]; then
    echo "ok 1 - $count pages lint clean with ${linters% }"
else
    echo "not ok 1 - $bad of $count pages have warnings (${linters% })"
fi

# 2: control: a page with a warning is caught by the same lint
cat >"$tmp/broken.3" <<'PAGE'
.TH BROKEN 3 2026-12-02 libvfiocpr "Library Functions Manual"
.SH NAME
broken \- a page with a mistake
.SH DESCRIPTION
.BR
text after an empty .BR and an unknown macro
.XY
PAGE
if [ -z "$linters" ] || lint "$tmp/broken.3" >"$tmp/broken.out"; then
    echo "not ok 2 - control: a page with warnings is caught"
else
    echo "ok 2 - control: a page with warnings is caught ($(wc -l <"$tmp/broken.out") warnings)"
fi

# 3: link pages point at real pages of the same directory
bad=0 count=0
for p in $pages; do
    is_link "$p" || continue
    count=$((count + 1))
    target=$(head -n 1 "$p" | sed 's/^\.so *//')
    case $target in
    man3/*) f="$mandir/${target#man3/}" ;;
    *) f= ;;
    esac
    if [ $(wc -l <"$p") -ne 1 ] || [ -z "$f" ] || [ ! -f "$f" ] || is_link "$f"; then
        echo "# $(basename "$p"): bad link '.so $target'"
        bad=$((bad + 1))
    fi
done
if [ "$bad" -eq 0 ] && [ "$count" -gt 0 ]; then
    echo "ok 3 - $count .so link pages point at real pages"
else
    echo "not ok 3 - .so link pages ($bad bad of $count)"
fi

# The symbols of the version script, every node: the `name;` tokens after global:.
sed 's|/\*.*\*/||' "$sym" | tr ';{}' '\n\n\n' | awk '
    { sub(/^[ \t]+/, ""); sub(/[ \t]+$/, "") }
    /^global:/ { g = 1; sub(/^global:[ \t]*/, "") }
    /^local:/ { g = 0 }
    g && /^[A-Za-z_][A-Za-z0-9_]*$/ { print }
' >"$tmp/sym.raw"
for s in $EXTRA_SYMBOLS; do echo "$s"; done >>"$tmp/sym.raw"
sort -u "$tmp/sym.raw" >"$tmp/symbols"

# documented SYMBOL: the page for it exists and its NAME section lists it
documented() {
    f="$mandir/$1.3"
    [ -f "$f" ] || { echo "# $1: no page $f"; return 1; }
    if is_link "$f"; then
        f="$mandir/$(head -n 1 "$f" | sed 's|^\.so *man3/||')"
    fi
    [ -f "$f" ] || { echo "# $1: link target missing"; return 1; }
    awk '/^\.SH NAME/ { n = 1; next } /^\.SH/ { n = 0 } n' "$f" | sed 's/\\-.*//' |
        tr ', ' '\n\n' | grep -qx "$1" ||
        { echo "# $1: not in the NAME section of $(basename "$f")"; return 1; }
}

# 4: every symbol has its page
bad=0
while read -r s; do
    documented "$s" || bad=$((bad + 1))
done <"$tmp/symbols"
total=$(wc -l <"$tmp/symbols")
if [ "$total" -lt 60 ]; then
    echo "not ok 4 - only $total symbols read from $sym: parse error?"
elif [ "$bad" -eq 0 ]; then
    echo "ok 4 - all $total exported symbols (every node, and the 0.3 calls) have a page"
else
    echo "not ok 4 - $bad of $total exported symbols have no page"
fi

# 5: control: a symbol without a page is caught
if documented vfiocpr_no_such_function >/dev/null; then
    echo "not ok 5 - control: a symbol without a page is caught"
else
    echo "ok 5 - control: a symbol without a page is caught"
fi

# 6: every name a page lists has its own file (man vfiocpr_xxx finds it)
bad=0
for p in $pages; do
    is_link "$p" && continue
    case $p in *.1) continue ;; esac
    for nm in $(awk '/^\.SH NAME/ { n = 1; next } /^\.SH/ { n = 0 } n' "$p" | sed 's/\\-.*//' | tr ',' ' '); do
        [ -f "$mandir/$nm.3" ] || { echo "# $(basename "$p") lists $nm: no $nm.3"; bad=$((bad + 1)); }
    done
done
if [ "$bad" -eq 0 ]; then
    echo "ok 6 - every name in a NAME section has its page or link"
else
    echo "not ok 6 - $bad names without a page or link"
fi

# 7: every page is installed (listed in Makefile.am)
bad=0
for p in $pages; do
    rel=${p#"$top_srcdir"/}
    grep -q "[[:space:]]$rel\\( \\|\$\\)" "$top_srcdir/Makefile.am" ||
        { echo "# $rel is not in a *_MANS variable of Makefile.am"; bad=$((bad + 1)); }
done
if [ "$bad" -eq 0 ]; then
    echo "ok 7 - every page is installed"
else
    echo "not ok 7 - $bad pages not installed"
fi
