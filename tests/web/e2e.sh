#!/usr/bin/env bash
# Dashboard end-to-end test against a real `remora tap` on loopback with real
# traffic: nginx (HTTP), dnsmasq (DNS over UDP) and redis-server on 127.0.0.1
# high ports, a bounded traffic generator, and web/e2e/e2e.mjs in headless
# Chromium. Exit status is the e2e's. Screenshots: web/e2e/artifacts/.
#
#   tests/web/e2e.sh            (needs target/release/remora and web/dist built;
#                                REMORA_BIN overrides the binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

scripts/setup.sh chromium dnsmasq-base redis-server redis-tools nginx-light curl bind9-dnsutils

remora=${REMORA_BIN:-$root/target/release/remora}
[ -x "$remora" ] || { echo "e2e: $remora is missing: build it with cargo build --release -p remora" >&2; exit 2; }
[ -f web/dist/index.html ] || { echo "e2e: web/dist is missing: run npm ci && npm run build in web/" >&2; exit 2; }
[ -d web/node_modules/playwright-core ] || (cd web && npm ci --no-audit --no-fund)

# Traffic stops by itself after this many rounds or seconds, whichever first.
max_rounds=${E2E_TRAFFIC_ROUNDS:-400}
max_seconds=${E2E_TRAFFIC_SECONDS:-120}

work=$(mktemp -d /tmp/remora-web-e2e.XXXXXX)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${keep_logs:-}" ]; then echo "e2e: logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP and UDP port on ADDR, below Linux's ephemeral range (32768+): remora
# tells client from server by the lower port when it saw no SYN (UDP), so a
# server port above the client's would turn DNS entries around.
free_port() { # addr
  node -e '
    const net = require("net"), dgram = require("dgram"), addr = process.argv[1];
    const tryPort = (n) => {
      const p = 20000 + Math.floor(Math.random() * 12000);
      const t = net.createServer().once("error", () => tryPort(n + 1)).listen(p, addr, () => {
        const u = dgram.createSocket("udp4").once("error", () => { t.close(); tryPort(n + 1); });
        u.bind(p, addr, () => { console.log(p); u.close(); t.close(); });
      });
    };
    tryPort(0);' "$1"
}
wait_tcp() { # addr port name
  local i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "e2e: $3 did not start on $1:$2" >&2; keep_logs=1; exit 1
}

# Each server on its own loopback address so the service map has one node per
# service; clients connect from 127.0.0.1.
client=127.0.0.1 http_addr=127.0.0.2 redis_addr=127.0.0.3 dns_addr=127.0.0.4
http_port=$(free_port $http_addr); redis_port=$(free_port $redis_addr); dns_port=$(free_port $dns_addr)
api_port=$(free_port 127.0.0.1)
# With a token (which loopback does not require) the dashboard is tested as
# it runs on a node's address: the token given once in its address, with the
# characters URLs reserve in it.
token="e2e+$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')&t=1"


# nginx: / is a page, /fail answers 500, anything missing 404.
mkdir -p "$work/nginx/www" "$work/nginx/tmp"
echo '<h1>remora dashboard e2e</h1>' >"$work/nginx/www/index.html"
chmod 755 "$work" "$work/nginx" "$work/nginx/www"; chmod 644 "$work/nginx/www/index.html"
n=$work/nginx
cat >"$n/nginx.conf" <<CONF
worker_processes 1; error_log $n/error.log; pid $n/nginx.pid;
events { worker_connections 256; }
http { access_log off; client_body_temp_path $n/tmp; proxy_temp_path $n/tmp;
  fastcgi_temp_path $n/tmp; uwsgi_temp_path $n/tmp; scgi_temp_path $n/tmp;
  server { listen $http_addr:$http_port; root $n/www; location = /fail { return 500; } } }
CONF
nginx -c "$n/nginx.conf" -p "$n" -g 'daemon off;' >/dev/null 2>&1 & pids+=($!)

redis-server --port "$redis_port" --bind $redis_addr --save '' --appendonly no >"$work/redis.log" 2>&1 & pids+=($!)

dnsmasq -k --port="$dns_port" --listen-address=$dns_addr --bind-interfaces --no-resolv --no-hosts \
  --pid-file= --log-facility=- --user="$(id -un)" \
  --address=/example.test/192.0.2.10 --address=/api.example.test/192.0.2.11 \
  --address=/nx.test/ >"$work/dnsmasq.log" 2>&1 & pids+=($!)

wait_tcp $http_addr "$http_port" nginx
wait_tcp $redis_addr "$redis_port" redis-server
wait_tcp $dns_addr "$dns_port" dnsmasq # dnsmasq also answers over TCP

"$remora" tap -i lo --no-promisc \
  --bpf "(host $http_addr and tcp port $http_port) or (host $redis_addr and tcp port $redis_port) or (host $dns_addr and udp port $dns_port)" \
  --listen "127.0.0.1:$api_port" --token "$token" --data-dir "$work/data" --cache-dir "$work/cache" \
  --web-dir web/dist >"$work/remora.log" 2>&1 & pids+=($!)
for i in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$api_port/healthz" >/dev/null 2>&1 && break
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "e2e: remora tap exited:" >&2; cat "$work/remora.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$api_port/healthz" >/dev/null || { echo "e2e: remora tap did not answer /healthz" >&2; cat "$work/remora.log" >&2; exit 1; }

# Bounded traffic: a few requests of each kind per round, one round every 0.5 s.
traffic() {
  set +e # one failed request must not end the generator
  local i=0 start=$SECONDS
  while [ $i -lt "$max_rounds" ] && [ $((SECONDS - start)) -lt "$max_seconds" ]; do
    i=$((i + 1))
    curl -s -o /dev/null "http://$http_addr:$http_port/"
    curl -s -o /dev/null "http://$http_addr:$http_port/missing-$((i % 5))"
    [ $((i % 3)) -eq 0 ] && curl -s -o /dev/null "http://$http_addr:$http_port/fail"
    dig +short +tries=1 +time=1 @$dns_addr -p "$dns_port" example.test A >/dev/null
    dig +short +tries=1 +time=1 @$dns_addr -p "$dns_port" api.example.test A >/dev/null
    [ $((i % 2)) -eq 0 ] && dig +short +tries=1 +time=1 @$dns_addr -p "$dns_port" "gone$i.nx.test" A >/dev/null
    redis-cli -h $redis_addr -p "$redis_port" SET "session:$((i % 10))" "user-$i" >/dev/null
    redis-cli -h $redis_addr -p "$redis_port" GET "session:$((i % 10))" >/dev/null
    sleep 0.5
  done
}
traffic >"$work/traffic.log" 2>&1 & pids+=($!)

status=0
# What the e2e must find: these edges in the service map, and DNS answers.
export E2E_EXPECT_EDGES="$client>$http_addr/HTTP $client>$redis_addr/Redis $client>$dns_addr/DNS"
export E2E_EXPECT_DNS="example.test=192.0.2.10 api.example.test=192.0.2.11"
(cd web && REMORA_URL="http://127.0.0.1:$api_port" REMORA_TOKEN="$token" npm run --silent e2e) || status=$?
[ $status -eq 0 ] || { keep_logs=1; echo "e2e: remora log:" >&2; tail -20 "$work/remora.log" >&2; }
exit $status
