#!/usr/bin/env bash
# Property-based API tests of the demo with schemathesis, once per strategy.
#
# For each of shared-schema, separate-schema and separate-db: a fresh PostgreSQL database,
# the demo served on a free port with a known admin token, then schemathesis run against the
# demo's own /openapi.json, twice:
#   1. the tenant API (tag `tenant`) as the owner of the sample tenant `acme`, with the token
#      that `serve` prints on its first run; the document lists these routes as /api/..., so
#      the base URL is http://HOST:PORT/t/acme (the tenant from the path);
#   2. the admin API (tag `admin`, with the admin token) and the operations routes
#      (`operations`: /healthz, /readyz, /metrics).
# The tenant API runs first: the admin run may delete any tenant (DELETE /admin/tenants/{slug}
# and memberships), acme included, and nothing runs after it but the teardown.
#
# Checks: every check schemathesis has (`--checks all`: no 5xx, status codes, content types and
# response schemas as documented, schema-violating requests refused, schema-valid requests
# accepted, undeclared methods answered 405 with Allow, authentication not ignored, deleted
# resources gone); all phases (examples, coverage, fuzzing, stateful), positive and negative
# data, at most ST_MAX_EXAMPLES cases per operation (about a minute per strategy on a
# 2-core machine). The seed is fixed (ST_SEED) and printed; schemathesis 4 calls it --seed (3.x
# had --hypothesis-seed). Reports (JSON, JUnit) and the demo's log go to target/schemathesis/.
# The databases (and separate-db's tenant databases, named with the database's name as their
# prefix) are dropped at the end. Exits non-zero when any strategy had a failure or an error.
#
# Usage: .ci/schemathesis.sh [DEMO_BINARY]   (default target/debug/tenancy-demo)
# Environment: PGHOST, PGPORT, PGUSER (default 127.0.0.1, 5432, postgres; trust auth), ST_SEED,
# ST_MAX_EXAMPLES, ST_STRATEGIES (space-separated), ST_TIMEOUT (seconds per schemathesis run),
# ST_CHECKS (default all).
set -euo pipefail

# The binary, relative to the caller's folder when given, to the workspace otherwise.
if [ $# -ge 1 ]; then
    BIN=$(realpath -- "$1")
fi
cd "$(dirname "$0")/.."
BIN=${BIN:-$(realpath -- target/debug/tenancy-demo)}
[ -x "$BIN" ] || { echo "schemathesis.sh: no demo binary at $BIN" >&2; exit 2; }

SCHEMATHESIS_VERSION=4.32.5
VENV=target/schemathesis-venv
OUT=target/schemathesis
SEED=${ST_SEED:-12345}
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-200}
STRATEGIES=${ST_STRATEGIES:-shared-schema separate-schema separate-db hybrid}
ST_TIMEOUT=${ST_TIMEOUT:-300}
ADMIN_TOKEN=schemathesis-admin-token
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
CHECKS=${ST_CHECKS:-all}

log() { printf '\n==> %s\n' "$*"; }

# --- schemathesis, pinned, in its own venv -----------------------------------------------------
if ! "$VENV/bin/st" --version 2>/dev/null | grep -qx "st, version $SCHEMATHESIS_VERSION"; then
    log "installing schemathesis $SCHEMATHESIS_VERSION in $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$VENV/bin/st" --version
ST=$(realpath -- "$VENV/bin/st")
PY=$(realpath -- "$VENV/bin/python")
color=()
if [ -n "${CI:-}" ] || [ ! -t 1 ]; then color=(--no-color); fi

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(realpath -- "$OUT")

psql_() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

# --- One strategy's demo: started, found, stopped -----------------------------------------------
demo_pid=""
db=""
work=""

stop_demo() {
    if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
        kill -TERM "$demo_pid" 2>/dev/null || true
        for _ in $(seq 1 40); do
            kill -0 "$demo_pid" 2>/dev/null || break
            sleep 1
        done
        kill -KILL "$demo_pid" 2>/dev/null || true
    fi
    [ -z "$demo_pid" ] || wait "$demo_pid" 2>/dev/null || true
    demo_pid=""
}

drop_databases() {
    [ -n "$db" ] || return 0
    local names name
    # The demo's database and separate-db's tenant databases (prefix "$db"_).
    names=$(psql_ -At -c "SELECT datname FROM pg_database
        WHERE datname = '$db' OR starts_with(datname, '${db}_')" || true)
    for name in $names; do
        psql_ -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" || true
    done
    db=""
}

cleanup() {
    stop_demo
    drop_databases
    [ -z "$work" ] || rm -rf "$work"
    work=""
}
trap cleanup EXIT

# Starts the demo for strategy $1 on a fresh database; sets BASE, TENANT and USER_TOKEN.
start_demo() {
    local strategy=$1 dir=$2 line
    local short
    case $strategy in shared-schema) short=shared ;; separate-schema) short=schema ;; hybrid) short=hyb ;; *) short=db ;; esac
    # At most 22 characters: separate-db names tenant databases "$db"_<slug> (63 bytes at most).
    db="tst_${short}_$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
    psql_ -c "CREATE DATABASE \"$db\""
    # Its own folder: no tenancy-demo.toml or data folder of the workspace is picked up.
    work=$(mktemp -d)
    (cd "$work" && exec env -u TENANCY_STRATEGY \
        DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$db" \
        TENANCY__HTTP__HOST=127.0.0.1 TENANCY__HTTP__PORT=0 \
        TENANCY__ADMIN_TOKEN="$ADMIN_TOKEN" TENANCY__SAMPLE_DATA=true \
        "$BIN" --strategy "$strategy" serve >"$dir/demo.out" 2>"$dir/demo.log") &
    demo_pid=$!
    BASE=""
    for _ in $(seq 1 120); do
        BASE=$(grep -o 'listening on http://[^ ]*' "$dir/demo.out" 2>/dev/null | sed 's/^listening on //' || true)
        [ -n "$BASE" ] && break
        kill -0 "$demo_pid" 2>/dev/null || break
        sleep 0.5
    done
    if [ -z "$BASE" ]; then
        cat "$dir/demo.out" "$dir/demo.log" >&2
        echo "the demo ($strategy) did not start" >&2
        return 1
    fi
    for _ in $(seq 1 60); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE/readyz" || true)" = 200 ] && break
        sleep 0.5
    done
    # The first run's sample: curl -H 'Authorization: Bearer TOKEN' BASE/t/acme/api/projects
    line=$(grep -o "curl -H .*" "$dir/demo.out" || true)
    USER_TOKEN=$(sed -n "s/.*Bearer \([^']*\)'.*/\1/p" <<<"$line")
    TENANT=$(sed -n 's#.*/t/\([^/]*\)/api/.*#\1#p' <<<"$line")
    if [ -z "$USER_TOKEN" ] || [ -z "$TENANT" ]; then
        echo "no sample tenant printed: creating acme, a user, a membership and a token"
        make_tenant_user
    fi
}

# The same sample through the admin API, for a database that already had users.
make_tenant_user() {
    local auth=(-H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json')
    local code user
    TENANT=acme
    code=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" -X POST \
        -d '{"slug":"acme","name":"Acme Inc."}' "$BASE/admin/tenants")
    [ "$code" = 201 ] || [ "$code" = 409 ] || { echo "creating acme: $code" >&2; return 1; }
    user=$(curl -sf "${auth[@]}" -X POST \
        -d "{\"email\":\"st-$RANDOM@example.com\",\"name\":\"schemathesis\"}" "$BASE/admin/users" |
        "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    curl -sf "${auth[@]}" -X PUT -d '{"role":"owner"}' "$BASE/admin/tenants/acme/members/$user"
    USER_TOKEN=$(curl -sf "${auth[@]}" -X POST "$BASE/admin/users/$user/tokens" |
        "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
}

# Runs schemathesis: $1 a name for the reports, $2 the base URL, $3 the token, then filters.
run_st() {
    local name=$1 url=$2 token=$3 rc=0
    shift 3
    log "schemathesis $name: $url (seed $SEED, at most $MAX_EXAMPLES examples per operation)"
    timeout "$ST_TIMEOUT" "$ST" run "$BASE/openapi.json" --url "$url" \
        -H "Authorization: Bearer $token" "$@" \
        --checks "$CHECKS" --max-examples "$MAX_EXAMPLES" --continue-on-failure \
        --seed "$SEED" --generation-database none --request-timeout 10 \
        --report json,junit --report-json-path "$dir/$name.json" \
        --report-junit-path "$dir/$name.junit.xml" "${color[@]}" 2>&1 |
        tee "$dir/$name.log" || rc=$?
    [ "$rc" != 124 ] || echo "schemathesis $name: stopped after ${ST_TIMEOUT}s" >&2
    return "$rc"
}

# "tested failures errors" from a run's JSON report ("0 0 1" when there is none).
counts() {
    "$PY" - "$1" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print(0, 0, 1)
    sys.exit()
print(r["operations"]["tested"],
      sum(f["count"] for f in r["failures"]),
      sum(e["count"] for e in r["errors"]))
EOF
}

# --- Every strategy ---------------------------------------------------------------------------
summary=()
failed=0
for strategy in $STRATEGIES; do
    dir="$OUT/$strategy"
    mkdir -p "$dir"
    log "strategy $strategy"
    start=$SECONDS
    ok=1
    if start_demo "$strategy" "$dir"; then
        echo "demo at $BASE, tenant $TENANT; log in $dir/demo.log"
        run_st tenant "$BASE/t/$TENANT" "$USER_TOKEN" --include-tag tenant || ok=0
        run_st admin "$BASE" "$ADMIN_TOKEN" --include-tag admin --include-tag operations || ok=0
    else
        ok=0
    fi
    cleanup
    read -r t_ops t_fail t_err < <(counts "$dir/tenant.json")
    read -r a_ops a_fail a_err < <(counts "$dir/admin.json")
    if grep -q "internal error" "$dir/demo.log" 2>/dev/null; then
        echo "server errors in the demo's log ($dir/demo.log):"
        grep -A4 "internal error" "$dir/demo.log" | grep -v "^ *$" | head -40 || true
    fi
    fail=$((t_fail + a_fail))
    err=$((t_err + a_err))
    [ "$ok" = 1 ] && [ "$fail" = 0 ] && [ "$err" = 0 ] || failed=1
    summary+=("schemathesis $strategy: $((t_ops + a_ops)) operations tested, $fail failures (tenant $t_fail, admin $a_fail), $err errors, $((SECONDS - start))s, seed $SEED")
done

log "summary (reports in $OUT)"
printf '%s\n' "${summary[@]}"
if [ "$failed" != 0 ]; then
    echo "schemathesis found failures; rerun one strategy with ST_STRATEGIES=<strategy> ST_SEED=$SEED" >&2
    exit 1
fi
