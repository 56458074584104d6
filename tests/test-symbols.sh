#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The ABI is exactly what lib/libvfiocpr.sym lists. A function marked VFIOCPR_EXPORT
# in the header but missing from the version script is silently hidden by `local: *`
# and never shows up in the shared library, so the header's declarations count as
# exports too: the linker does not complain, only this test does. A name listed in
# the script but no longer defined would break every binary linked against it.
# Speaks TAP for automake's tap-driver.

top_srcdir=${top_srcdir:-$(dirname "$0")/..}
top_builddir=${top_builddir:-.}
NM=${NM:-nm}
LC_ALL=C
export LC_ALL
so="$top_builddir/lib/.libs/libvfiocpr.so"
sym="$top_srcdir/lib/libvfiocpr.sym"
header="$top_srcdir/include/vfiocpr.h"

echo "1..4"
if [ ! -f "$so" ]; then
    echo "Bail out! $so not built"
    exit 1
fi
for f in "$sym" "$header"; do
    if [ ! -f "$f" ]; then
        echo "Bail out! $f missing"
        exit 1
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-symbols.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# Version script: drop /* */ comments (possibly spanning lines), then walk the
# tokens. Symbols are the `name;` tokens between `global:` and the next `local:` or
# closing brace; the node names (`NAME {`) are kept too, because the linker exports
# each node as an absolute symbol that is not part of the API.
awk '
    { text = text " " $0 }
    END {
        out = ""
        while ((i = index(text, "/*")) > 0) {
            rest = substr(text, i + 2)
            j = index(rest, "*/")
            out = out substr(text, 1, i - 1) " "
            text = j > 0 ? substr(rest, j + 2) : ""
        }
        text = out text
        gsub(/[{}:;]/, " & ", text)
        n = split(text, tok, /[ \t\r\n]+/)
        section = ""
        for (k = 1; k <= n; k++) {
            t = tok[k]
            if (t == "") continue
            if (t == "{") {
                if (prev != "") print prev > nodes
                node = prev
                section = ""
            } else if (t == "}") {
                section = ""
            } else if (t == ":") {
                section = prev
            } else if (t == ";") {
                if (section == "global" && prev != "") {
                    print prev > listed
                    print prev, node > listed_nodes
                }
            } else {
                prev = t
                continue
            }
            prev = ""
        }
    }
'  nodes="$tmp/nodes" listed="$tmp/listed.raw" listed_nodes="$tmp/listed-nodes" "$sym" ||
    { echo "Bail out! cannot parse $sym"; exit 1; }
touch "$tmp/nodes" "$tmp/listed.raw" "$tmp/listed-nodes"
sort -u "$tmp/listed.raw" >"$tmp/listed"

# Defined global dynamic symbols, one "name version" per line (version empty when
# the symbol is unversioned). Lower-case types are local; the version nodes show up
# as type A under their own name.
# $NM unquoted: libtool's value carries options ("nm -B").
if ! $NM -D --defined-only "$so" >"$tmp/nm" 2>"$tmp/nm.err"; then
    echo "Bail out! $NM -D failed: $(head -n 1 "$tmp/nm.err")"
    exit 1
fi
awk '
    FILENAME == nodes { node[$1] = 1; next }
    NF >= 3 && $(NF - 1) ~ /^[A-Z]$/ {
        name = $NF; ver = ""
        if ((i = index(name, "@")) > 0) {
            ver = substr(name, i)
            name = substr(name, 1, i - 1)
        }
        if ($(NF - 1) == "A" && ver == "" && (name in node)) next
        print name, ver
    }
' nodes="$tmp/nodes" "$tmp/nodes" "$tmp/nm" >"$tmp/exported.ver"
cut -d' ' -f1 "$tmp/exported.ver" | sort -u >"$tmp/exported"

# Names the header declares VFIOCPR_EXPORT: the identifier just before the first
# '(' (or ';', '[', '=' for data) that follows the macro, preprocessor lines and
# comments aside.
awk '
    /^[ \t]*#/ { next }
    { text = text " " $0 }
    END {
        out = ""
        while ((i = index(text, "/*")) > 0) {
            rest = substr(text, i + 2)
            j = index(rest, "*/")
            out = out substr(text, 1, i - 1) " "
            text = j > 0 ? substr(rest, j + 2) : ""
        }
        text = out text
        while ((i = index(text, "VFIOCPR_EXPORT")) > 0) {
            text = substr(text, i + length("VFIOCPR_EXPORT"))
            if (!match(text, /[(;[=]/)) break
            decl = substr(text, 1, RSTART - 1)
            if (match(decl, /[A-Za-z_][A-Za-z0-9_]*[ \t]*$/)) {
                name = substr(decl, RSTART, RLENGTH)
                sub(/[ \t]+$/, "", name)
                print name
            }
        }
    }
' "$header" | sort -u >"$tmp/declared"
sort -u "$tmp/exported" "$tmp/declared" >"$tmp/public"

# Prints the lines of $1 as TAP diagnostics, with a heading.
diag() {
    echo "# $2:"
    sed 's/^/#   /' "$1"
}

comm -23 "$tmp/public" "$tmp/listed" >"$tmp/unlisted"
if [ -s "$tmp/unlisted" ]; then
    echo "not ok 1 - every exported symbol is listed in libvfiocpr.sym"
    comm -12 "$tmp/unlisted" "$tmp/exported" >"$tmp/unlisted.so"
    comm -23 "$tmp/unlisted" "$tmp/exported" >"$tmp/unlisted.h"
    [ -s "$tmp/unlisted.so" ] && diag "$tmp/unlisted.so" "exported by $so but not in $sym"
    [ -s "$tmp/unlisted.h" ] && diag "$tmp/unlisted.h" \
        "declared VFIOCPR_EXPORT in $header but not in $sym (hidden by local: *)"
else
    echo "ok 1 - every exported symbol is listed in libvfiocpr.sym" \
        "($(wc -l <"$tmp/public") symbols)"
fi

comm -13 "$tmp/exported" "$tmp/listed" >"$tmp/missing"
if [ -s "$tmp/missing" ]; then
    echo "not ok 2 - every symbol listed in libvfiocpr.sym is exported"
    diag "$tmp/missing" "listed in $sym but not exported (hidden, renamed or removed?)"
else
    echo "ok 2 - every symbol listed in libvfiocpr.sym is exported" \
        "($(wc -l <"$tmp/listed") symbols)"
fi

# A compat alias (name@VFIOCPR_x) is versioned too, so one @ is enough here.
awk '$2 !~ /^@@?VFIOCPR_/ { print $1 ($2 == "" ? " (unversioned)" : " " $2) }' \
    "$tmp/exported.ver" | sort -u >"$tmp/unversioned"
if [ -s "$tmp/unversioned" ]; then
    echo "not ok 3 - every exported symbol carries a VFIOCPR_ version node"
    diag "$tmp/unversioned" "exported without a VFIOCPR_ version"
else
    echo "ok 3 - every exported symbol carries a VFIOCPR_ version node"
fi

# Each symbol carries the node that lists it as its default version (name@@NODE): a
# symbol moved to another node, or a new one listed in an old node, changes the ABI
# of binaries linked against the old one.
awk '
    FILENAME == want { node[$1] = $2; next }
    $2 ~ /^@@/ { have[$1] = substr($2, 3) }
    END {
        for (s in node)
            if (!(s in have)) print s " listed in " node[s] ", exported without a default version"
            else if (have[s] != node[s]) print s " listed in " node[s] ", exported as " have[s]
    }
' want="$tmp/listed-nodes" "$tmp/listed-nodes" "$tmp/exported.ver" | sort >"$tmp/wrong-node"
if [ -s "$tmp/wrong-node" ]; then
    echo "not ok 4 - every symbol's default version is the node that lists it"
    diag "$tmp/wrong-node" "version node mismatch"
else
    echo "ok 4 - every symbol's default version is the node that lists it" \
        "($(awk '$2 == "VFIOCPR_0.3"' "$tmp/listed-nodes" | wc -l) in VFIOCPR_0.3)"
fi
