#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LAB STAND-IN for vLLM's OpenAI-compatible server. Not vLLM, not a model.

vLLM needs a GPU and its image (vllm/vllm-openai) cannot be fetched in the
lab, so the vllm_server role is exercised against this small stdlib server
instead. It behaves like ``python3 -m vllm.entrypoints.openai.api_server`` in
the ways the role and its tests depend on, and in nothing else:

* the same command line: ``--model`` (a local folder; offline, so a Hub name
  is refused), ``--served-model-name``, ``--host``, ``--port``,
  ``--api-key`` and the many tuning flags (accepted and ignored);
* ``VLLM_API_KEY`` (or ``--api-key``): every path under ``/v1`` needs
  ``Authorization: Bearer <key>``; ``/health``, ``/metrics`` and ``/version``
  stay open, exactly the vLLM behaviour the role's nginx front end closes;
* ``GET /health`` (200, empty), ``GET /metrics`` (Prometheus text),
  ``GET /v1/models``, ``POST /v1/chat/completions`` and ``POST /v1/completions``
  with OpenAI-shaped JSON. The "completion" is a fixed echo built from the
  request and the model's config.json, marked as a stand-in.

It reads the model folder at start (config.json must parse) and refuses to
start when the folder is missing, as vLLM does offline. It never opens a
connection of its own.
"""

import argparse
import hashlib
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STANDIN_VERSION = "0.1.0-standin"
STARTED = time.time()
COUNTERS = {"requests_total": 0, "unauthorized_total": 0}
LOCK = threading.Lock()


def parse_args(argv):
    """vLLM's flags that matter here; everything else is accepted and reported as ignored."""
    parser = argparse.ArgumentParser(prog="vllm-standin", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--served-model-name", nargs="+", default=None)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--trust-remote-code", action="store_true")
    args, ignored = parser.parse_known_args(argv)
    return args, ignored


def load_model(path):
    """Return the model's config; refuse what vLLM offline would refuse (no local folder)."""
    if not os.path.isabs(path):
        raise SystemExit("vllm-standin: --model %r is not an absolute local path; "
                         "offline (HF_HUB_OFFLINE=1) nothing can be downloaded" % path)
    config = os.path.join(path, "config.json")
    try:
        with open(config, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit("vllm-standin: cannot load model from %s: %s" % (path, exc))


def metrics_text(served):
    """A few Prometheus lines shaped like vLLM's (prefix vllm:)."""
    with LOCK:
        counters = dict(COUNTERS)
    lines = ["# HELP vllm:standin_info Lab stand-in for vLLM, not vLLM.",
             "# TYPE vllm:standin_info gauge",
             'vllm:standin_info{version="%s",model_name="%s"} 1' % (STANDIN_VERSION, served[0]),
             "# TYPE vllm:request_success_total counter",
             'vllm:request_success_total{model_name="%s"} %d' % (served[0], counters["requests_total"]),
             "# TYPE vllm:standin_unauthorized_total counter",
             "vllm:standin_unauthorized_total %d" % counters["unauthorized_total"],
             "# TYPE process_start_time_seconds gauge",
             "process_start_time_seconds %.3f" % STARTED]
    return "\n".join(lines) + "\n"


def reply_text(messages, config):
    """The stand-in's fixed answer: says what it is and echoes the last user message."""
    last = ""
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            last = content if isinstance(content, str) else json.dumps(content)
    return "[vllm stand-in, %s] you said: %s" % (config.get("note", "no model note"), last)


def make_handler(args, config, api_key):
    """Request handler class bound to this server's settings."""
    served = args.served_model_name or [args.model]

    class Handler(BaseHTTPRequestHandler):
        server_version = "vllm-standin/" + STANDIN_VERSION
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *fargs):  # one line per request on stderr (journald)
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % fargs))

        def _send(self, status, body, ctype="application/json"):
            data = body if isinstance(body, bytes) else (
                body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode("utf-8"))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status, message, kind):
            self._send(status, {"object": "error", "message": message, "type": kind, "code": status})

        def _authorized(self):
            # vLLM's rule: only /v1 is guarded by the key; /health and /metrics never are.
            if not api_key or not self.path.startswith("/v1"):
                return True
            if self.headers.get("Authorization", "") == "Bearer " + api_key:
                return True
            with LOCK:
                COUNTERS["unauthorized_total"] += 1
            self._send(401, {"error": "Unauthorized"})
            return False

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > 1024 * 1024:
                raise ValueError("request body too large")
            raw = self.rfile.read(length) if length else b"{}"
            return json.loads(raw.decode("utf-8"))

        def do_GET(self):  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if not self._authorized():
                return
            if path == "/health":
                self._send(200, b"", "text/plain")
            elif path == "/metrics":
                self._send(200, metrics_text(served), "text/plain; version=0.0.4")
            elif path == "/version":
                self._send(200, {"version": STANDIN_VERSION, "standin": True})
            elif path == "/v1/models":
                self._send(200, {"object": "list", "data": [
                    {"id": name, "object": "model", "created": int(STARTED), "owned_by": "vllm",
                     "root": args.model, "parent": None, "standin": True} for name in served]})
            else:
                self._error(404, "Not Found", "NotFoundError")

        def do_POST(self):  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if not self._authorized():
                return
            if path not in ("/v1/chat/completions", "/v1/completions"):
                self._error(404, "Not Found", "NotFoundError")
                return
            try:
                body = self._body()
            except ValueError as exc:
                self._error(400, "invalid JSON body: %s" % exc, "BadRequestError")
                return
            model = body.get("model") if isinstance(body, dict) else None
            if model not in served:
                self._error(404, "The model `%s` does not exist." % model, "NotFoundError")
                return
            with LOCK:
                COUNTERS["requests_total"] += 1
            now = int(time.time())
            rid = hashlib.sha256(("%s:%s" % (now, json.dumps(body, sort_keys=True))).encode()).hexdigest()[:24]
            if path == "/v1/chat/completions":
                text = reply_text(body.get("messages"), config)
                choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                kind = "chat.completion"
            else:
                text = reply_text([{"role": "user", "content": body.get("prompt", "")}], config)
                choice = {"index": 0, "text": text, "finish_reason": "stop"}
                kind = "text_completion"
            self._send(200, {"id": "cmpl-standin-" + rid, "object": kind, "created": now, "model": model,
                             "choices": [choice],
                             "usage": {"prompt_tokens": 0, "completion_tokens": len(text.split()),
                                       "total_tokens": len(text.split())}})

    return Handler


def main(argv=None):
    """Parse vLLM's flags, load the local model folder, serve until stopped."""
    args, ignored = parse_args(sys.argv[1:] if argv is None else argv)
    config = load_model(args.model)
    api_key = args.api_key or os.environ.get("VLLM_API_KEY") or None
    sys.stderr.write("vllm-standin %s (LAB STAND-IN, not vLLM): model %s served as %s on %s:%d; "
                     "api key %s; offline env HF_HUB_OFFLINE=%s; ignored flags: %s\n"
                     % (STANDIN_VERSION, args.model, args.served_model_name, args.host, args.port,
                        "set" if api_key else "NOT set", os.environ.get("HF_HUB_OFFLINE", "unset"),
                        " ".join(ignored) or "none"))
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args, config, api_key))
    server.daemon_threads = True
    # As PID 1 in the container a process gets no default SIGTERM action:
    # without this, `podman stop` would wait for its timeout and kill.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
