# Shared by scripts/serve and scripts/test: install what is missing, start the Docker engine if needed.
# shellcheck shell=bash

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$ROOT/.tools/bin:$HOME/.local/bin:$PATH"

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install_missing [--no-start] CMD:PACKAGE ...  installs PACKAGE when CMD is not found.
# --no-start keeps package scripts from starting system services (we start what we need ourselves).
apt_install_missing() {
	local no_start=0 wanted=() pair cmd pkg
	if [ "${1:-}" = "--no-start" ]; then no_start=1; shift; fi
	for pair in "$@"; do
		cmd=${pair%%:*} pkg=${pair#*:}
		if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "$cmd" ]; then wanted+=("$pkg"); fi
	done
	[ ${#wanted[@]} -eq 0 ] && return 0
	command -v apt-get >/dev/null || die "missing ${wanted[*]} and no apt-get to install them"
	say "installing ${wanted[*]}"
	local blocker=/usr/sbin/policy-rc.d placed=0
	if [ $no_start -eq 1 ] && ! as_root test -e "$blocker"; then
		printf '#!/bin/sh\nexit 101\n' | as_root tee "$blocker" >/dev/null
		as_root chmod +x "$blocker"
		placed=1
	fi
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
	if [ $placed -eq 1 ]; then as_root rm -f "$blocker"; fi
}

# ensure_uv: the locked Python environment is managed by uv.
ensure_uv() {
	command -v uv >/dev/null 2>&1 && return 0
	apt_install_missing python3:python3
	if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
		apt_install_missing /usr/share/doc/python3-venv:python3-venv
	fi
	say "installing uv into .tools/"
	python3 -m venv "$ROOT/.tools"
	"$ROOT/.tools/bin/pip" install -q uv
}

docker_answers() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsS --max-time 3 --unix-socket /var/run/docker.sock http://docker/_ping >/dev/null 2>&1
	else
		timeout 5 docker version >/dev/null 2>&1
	fi
}

# ensure_docker: start dockerd in the background only if its socket does not answer.
# Sets STARTED_DOCKERD_PID when this script started it (stop it with stop_our_dockerd).
STARTED_DOCKERD_PID=""
ensure_docker() {
	apt_install_missing ${1:-} dockerd:docker.io curl:curl
	if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST}" != "unix:///var/run/docker.sock" ]; then
		timeout 10 docker version >/dev/null 2>&1 || die "DOCKER_HOST=$DOCKER_HOST does not answer"
		return 0
	fi
	docker_answers && return 0
	say "starting dockerd"
	local log="${TMPDIR:-/tmp}/wopr-dockerd.log"
	as_root dockerd >"$log" 2>&1 &
	STARTED_DOCKERD_PID=$!
	local i
	for i in $(seq 1 120); do
		docker_answers && return 0
		kill -0 "$STARTED_DOCKERD_PID" 2>/dev/null || { tail -n 20 "$log" >&2; die "dockerd exited"; }
		sleep 0.5
	done
	tail -n 20 "$log" >&2
	die "dockerd did not answer within 60 s"
}

stop_our_dockerd() {
	[ -n "$STARTED_DOCKERD_PID" ] || return 0
	say "stopping the dockerd this script started"
	# a test may have restarted it (a new process): the pid file names the current one
	local pids="$STARTED_DOCKERD_PID" pid i
	if [ -s /var/run/docker.pid ]; then pids="$pids $(cat /var/run/docker.pid)"; fi
	for pid in $pids; do as_root kill -TERM "$pid" 2>/dev/null || true; done
	for i in $(seq 1 60); do
		local alive=0
		for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ $alive -eq 0 ] && return 0
		sleep 0.5
	done
	for pid in $pids; do as_root kill -KILL "$pid" 2>/dev/null || true; done
}

# make_swarm / leave_our_swarm: a single-node swarm on the engine for the Swarm test runs, made only if the engine
# is in none, and left (only if made here) so that the engine is as it was found.
MADE_SWARM=""
make_swarm() {
	[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ] && return 0
	docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null
	MADE_SWARM=1
}

leave_our_swarm() {
	[ -n "$MADE_SWARM" ] || return 0
	docker swarm leave --force >/dev/null || true
	MADE_SWARM=""
}

sync_python() {
	ensure_uv
	(cd "$ROOT" && uv sync --frozen --quiet)
}
