#!/usr/bin/env bash
# Relais API v1 quick start with nothing but openssl, curl and standard tools (docs/integrators.md).
#
#   CLIENT_ID=... KEY=private.pem [BASE_URL=http://127.0.0.1:8000] examples/curl-quickstart.sh
#
# KEY is the PEM file of an RSA 2048 private key whose public half was registered for CLIENT_ID:
#   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out private.pem
#   openssl pkey -in private.pem -pubout -out public.pem
#   .venv/bin/python manage.py apiclient_create --pharmacy 750000010 --name "curl quick start" --public-key public.pem
#
# It signs a client assertion (RS256), exchanges it for a bearer token, submits one screening
# (sampled 5 minutes ago), then reads that screening's status. Exits non-zero on any error.
set -euo pipefail

BASE_URL=${BASE_URL:-http://127.0.0.1:8000}
BASE_URL=${BASE_URL%/}
: "${CLIENT_ID:?set CLIENT_ID to the client id printed by apiclient_create}"
: "${KEY:?set KEY to the PEM file of your RSA private key}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# json_field NAME: the first string, number or null value of NAME in the JSON read on stdin (enough for these answers).
json_field() { tr ',{}' '\n\n\n' | sed -n "s/^ *\"$1\": *\"\{0,1\}\([^\"]*\)\"\{0,1\} *\$/\1/p" | head -n 1; }

# call METHOD PATH [curl options...]: prints the answer's body; exits when the status is not 2xx.
call() {
  local method=$1 path=$2 status
  shift 2
  status=$(curl -sS -o "$work/body" -w '%{http_code}' -H 'Accept-Language: en' -X "$method" "$BASE_URL$path" "$@")
  if [[ $status != 2* ]]; then
    echo "error: $method $path answered HTTP $status:" >&2
    cat "$work/body" >&2
    echo >&2
    exit 1
  fi
  cat "$work/body"
}

# 1. The client assertion: a JWT signed with your private key, valid 2 minutes, used once (fresh jti).
now=$(date +%s)
header=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
claims=$(printf '{"iss":"%s","sub":"%s","aud":"%s","iat":%d,"exp":%d,"jti":"%s"}' \
  "$CLIENT_ID" "$CLIENT_ID" "$BASE_URL/api/v1/token" "$now" "$((now + 120))" "$(openssl rand -hex 16)" | b64url)
signature=$(printf '%s.%s' "$header" "$claims" | openssl dgst -sha256 -sign "$KEY" -binary | b64url)
assertion="$header.$claims.$signature"

# 2. Exchange it for a bearer token (valid 10 minutes).
token_json=$(call POST /api/v1/token \
  --data-urlencode grant_type=client_credentials \
  --data-urlencode "client_id=$CLIENT_ID" \
  --data-urlencode client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
  --data-urlencode "client_assertion=$assertion")
token=$(json_field access_token <<<"$token_json")
echo "token: ok (expires in $(json_field expires_in <<<"$token_json") s)"

# 3. Submit one screening. sampled_at: 5 minutes ago, ISO 8601 with the local offset (GNU date, else BSD date).
sampled=$((now - 300))
sampled_at=$(date -d "@$sampled" +%Y-%m-%dT%H:%M:%S%:z 2>/dev/null ||
  date -r "$sampled" +%Y-%m-%dT%H:%M:%S%z | sed 's/\(..\)$/:\1/')
cat >"$work/screening.json" <<JSON
{
  "patient": {"last_name": "EXEMPLE-CURL", "first_names": "Jeanne", "sex": "F", "date_of_birth": "1985-03-12"},
  "device_id": "1232",
  "sampled_at": "$sampled_at",
  "results": {"sars-cov-2": "260415000"},
  "information_notice_given": true
}
JSON
submitted=$(call POST /api/v1/screenings \
  -H "Authorization: Bearer $token" \
  -H "Content-Type: application/json" \
  -H "Idempotency-Key: $(openssl rand -hex 16)" \
  --data-binary "@$work/screening.json")
echo "submitted: $submitted"
screening_id=$(json_field screening_id <<<"$submitted")
echo "screening_id: $screening_id"
echo "outcome: $(json_field outcome <<<"$submitted")"

# 4. Read its status, including the transfer to the national platform.
status_json=$(call GET "/api/v1/screenings/$screening_id" -H "Authorization: Bearer $token")
echo "status: $status_json"
echo "screening status: $(json_field status <<<"$status_json")"
transfer=$(sed 's/.*"transfer": *//' <<<"$status_json" | json_field status)
echo "transfer status: ${transfer:-none}"
