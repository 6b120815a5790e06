"""Unit tests for the lab's vLLM STAND-IN (lab/vllm-standin/server.py), not vLLM.

The stand-in must keep the vLLM behaviours the role and its Molecule scenario
rely on: vLLM's command line, a local model folder only, and the API key
guarding /v1 alone (which is why the role's nginx closes /health and /metrics).
"""
import importlib.util
import json
import os
import threading
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location("vllm_standin", os.path.join(ROOT, "lab", "vllm-standin", "server.py"))
standin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin)


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "demo-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"note": "lab demo model, not a real LLM"}))
    return str(folder)


@pytest.fixture
def server(model_dir):
    args, ignored = standin.parse_args(["--model", model_dir, "--served-model-name", "demo-model", "--host", "127.0.0.1",
                                        "--port", "0", "--max-model-len", "4096", "--dtype", "auto"])
    assert ignored == ["--max-model-len", "4096", "--dtype", "auto"]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), standin.make_handler(args, standin.load_model(model_dir), "k3y"))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()


def _call(url, path, key=None, body=None):
    headers = {"Authorization": "Bearer " + key} if key else {}
    data = json.dumps(body).encode() if body is not None else None
    if data:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw.startswith(b"{") else raw.decode())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_health_and_metrics_are_open_like_vllm(server):
    assert _call(server, "/health") == (200, "")
    status, text = _call(server, "/metrics")
    assert status == 200 and "vllm:standin_info" in text


@pytest.mark.parametrize("key", [None, "wrong"])
def test_v1_needs_the_bearer_key(server, key):
    assert _call(server, "/v1/models", key=key) == (401, {"error": "Unauthorized"})


def test_models_and_chat_with_the_key(server, model_dir):
    status, body = _call(server, "/v1/models", key="k3y")
    assert status == 200 and [m["id"] for m in body["data"]] == ["demo-model"]
    assert body["data"][0]["root"] == model_dir
    status, body = _call(server, "/v1/chat/completions", key="k3y",
                         body={"model": "demo-model", "messages": [{"role": "user", "content": "ping"}]})
    assert status == 200 and body["object"] == "chat.completion"
    assert "stand-in" in body["choices"][0]["message"]["content"]
    assert "you said: ping" in body["choices"][0]["message"]["content"]


def test_unknown_model_is_404_like_vllm(server):
    status, body = _call(server, "/v1/chat/completions", key="k3y", body={"model": "gpt-4", "messages": []})
    assert status == 404 and "does not exist" in body["message"]


@pytest.mark.parametrize("path", ["meta-llama/Llama-3-8B", "relative/folder"])
def test_a_hub_name_or_relative_path_is_refused_offline(path):
    with pytest.raises(SystemExit, match="not an absolute local path"):
        standin.load_model(path)


def test_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="cannot load model"):
        standin.load_model(str(tmp_path / "absent"))
