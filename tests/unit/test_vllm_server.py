"""Unit tests for module_utils/airgap_vllm.py and filter_plugins/vllm_server_filters.py."""
import copy
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from ansible.module_utils import airgap_vllm as v
from ansible.module_utils.airgap_evidence import validate_record
from vllm_server_filters import vllm_server_records

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIGEST = "sha256:" + "ab" * 32
CHECK = ["/usr/bin/python3", "/usr/local/lib/airgap/airgap_manifest.py", "check", "--dest", "/srv/models/demo"]


def _cfg(**over):
    cfg = {
        "models": [{"name": "demo", "port": 8000, "gpus": "none"}],
        "image": "registry.lab.internal/vllm/vllm-openai@" + DIGEST,
        "image_allow_unpinned": False, "image_source": "archive",
        "image_archive": "images/vllm.oci.tar", "image_archive_sha256": "cd" * 32,
        "bind_address": "10.20.0.21", "inference_networks": [], "management_networks": ["10.10.0.0/24"],
        "network_name": "airgap-vllm", "network_subnet": "10.213.0.0/24", "container_port": 8000,
        "user": "65534:65534", "tmpfs_size": "1g", "shm_size": "1g", "trust_remote_code": False,
        "extra_args": [], "env": {}, "api_key_file": "/etc/vllm/api-key", "health_timeout": 300,
        "firewall_check": True, "unit_style": "auto", "podman_path": "/usr/bin/podman",
        "model_weights_models": [{"name": "demo", "manifest": "models/demo/SHA256SUMS", "dest": "/srv/models/demo"},
                                 {"name": "other", "manifest": "models/other/SHA256SUMS", "dest": "/srv/models/other"}],
        "model_weights_by_name": {
            "demo": {"dest": "/srv/models/demo", "check_argv": CHECK},
            "other": {"dest": "/srv/models/other", "check_argv": CHECK[:-1] + ["/srv/models/other"]}},
        "network_vlan_interfaces": [
            {"id": 10, "name": "mgmt", "parent": "eth0", "purpose": "management", "addresses": ["10.10.0.21/24"]},
            {"id": 20, "name": "infer", "parent": "eth0", "purpose": "inference",
             "addresses": ["10.20.0.21/24", "fd00:20::21/64"]}],
        "firewall_egress_allow": [{"name": "vllm-backend", "dest": "10.213.0.0/24", "proto": "tcp", "ports": [8000]}],
        "firewall_ingress_allow": [{"name": "inference", "src": "10.20.0.0/24", "proto": "tcp", "ports": [8000, 8001]}],
        "host_addresses": None,
    }
    cfg.update(over)
    return cfg


def _errors(**over):
    return "\n".join(v.validate(_cfg(**over)))


# ---------------------------------------------------------------- validation

def test_valid_input_has_no_errors_and_inference_nets_come_from_the_vlans():
    assert v.validate(_cfg()) == []
    assert v.inference_networks(_cfg()) == ["10.20.0.0/24", "fd00:20::/64"]


def test_no_models_needs_nothing_else():
    assert v.validate(_cfg(models=[], image="", bind_address="")) == []


def test_model_not_in_model_weights_is_refused_naming_both_variables():
    err = _errors(models=[{"name": "ghost", "port": 8000}])
    assert "vllm_server_models[0] 'ghost': name 'ghost' is not in model_weights_models (declared there: demo, other)" in err


def test_model_without_start_time_check_is_refused():
    by_name = {"other": _cfg()["model_weights_by_name"]["other"]}
    err = _errors(model_weights_by_name=by_name)
    assert "model_weights_by_name has no start-time check for 'demo'" in err


def test_port_clash_names_both_entries():
    models = [{"name": "demo", "port": 8000}, {"name": "other", "port": 8000}]
    err = _errors(models=models)
    assert "vllm_server_models[1] 'other': port 8000 is already used by vllm_server_models[0] 'demo'" in err


def test_duplicate_model_name_is_refused():
    err = _errors(models=[{"name": "demo", "port": 8000}, {"name": "demo", "port": 8001}])
    assert "vllm_server_models[1] 'demo': name 'demo' is already used by vllm_server_models[0]" in err


@pytest.mark.parametrize("image", ["vllm/vllm-openai:v0.6.3", "vllm/vllm-openai", "registry/x@sha256:abc"])
def test_image_without_digest_is_refused_unless_allowed(image):
    err = _errors(image=image)
    assert "vllm_server_image: '%s'" % image in err
    if "@" not in image:
        assert "vllm_server_image_allow_unpinned: true" in err
        assert "vllm_server_image" not in _errors(image=image, image_allow_unpinned=True)


def test_bind_address_off_the_inference_vlan_is_refused():
    err = _errors(bind_address="10.10.0.21")
    assert "vllm_server_bind_address: 10.10.0.21 is not on the inference network (10.20.0.0/24, fd00:20::/64)" in err


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "127.0.0.1"])
def test_wildcard_or_loopback_bind_is_refused(bind):
    assert "vllm_server_bind_address: %s would listen on every network or only locally" % bind in _errors(bind_address=bind)


def test_bind_address_checked_against_explicit_inference_networks():
    cfg = dict(inference_networks=["10.190.0.0/24"], network_vlan_interfaces=[], bind_address="10.190.0.21",
               firewall_ingress_allow=[{"name": "i", "src": "10.190.0.0/24", "proto": "tcp", "ports": [8000]}])
    assert _errors(**cfg) == ""
    assert "no inference network is known" in _errors(network_vlan_interfaces=[])


def test_bind_address_must_be_on_the_host_when_facts_are_known():
    assert "is not an address of this host (it has 10.9.9.9)" in _errors(host_addresses=["10.9.9.9"])
    assert _errors(host_addresses=["10.20.0.21", "fe80::1%eth0"]) == ""


def test_blocked_backend_is_refused_naming_firewall_egress_allow():
    err = _errors(firewall_egress_allow=[{"name": "mirror", "dest": "10.89.0.10/32", "proto": "tcp", "ports": [80]}])
    assert "firewall_egress_allow: no entry allows tcp to 10.213.0.10 port 8000, the backend of vllm_server_models[0] 'demo'" in err


def test_egress_entry_with_wrong_port_or_proto_does_not_count():
    for entry in ({"name": "b", "dest": "10.213.0.0/24", "proto": "tcp", "ports": [9000]},
                  {"name": "b", "dest": "10.213.0.0/24", "proto": "udp", "ports": [8000]}):
        assert "firewall_egress_allow: no entry" in _errors(firewall_egress_allow=[entry])


def test_unreachable_front_end_is_refused_naming_firewall_ingress_allow():
    err = _errors(firewall_ingress_allow=[{"name": "ssh", "src": "10.10.0.0/24", "proto": "tcp", "ports": [8000]}])
    assert "firewall_ingress_allow: no entry admits tcp port 8000 from the inference network" in err


def test_firewall_check_can_be_turned_off():
    assert _errors(firewall_egress_allow=[], firewall_ingress_allow=[], firewall_check=False) == ""


def test_backend_subnet_must_not_overlap_the_inference_network():
    err = _errors(network_subnet="10.20.0.0/16")
    assert "vllm_server_network_subnet: 10.20.0.0/16 overlaps vllm_server_inference_networks entry 10.20.0.0/24" in err


def test_trust_remote_code_needs_explicit_permission():
    err = _errors(models=[{"name": "demo", "port": 8000, "args": ["--trust-remote-code"]}])
    assert "--trust-remote-code runs Python code shipped with the model" in err
    assert _errors(models=[{"name": "demo", "port": 8000, "args": ["--trust-remote-code"],
                            "trust_remote_code": True}]) == ""


@pytest.mark.parametrize("arg", ["--api-key=x", "--host", "--model", "--port=1"])
def test_flags_the_role_sets_are_refused_in_args(arg):
    assert "must not be given in args" in _errors(models=[{"name": "demo", "port": 8000, "args": [arg]}])


@pytest.mark.parametrize("name", ["HF_HUB_OFFLINE", "VLLM_NO_USAGE_STATS", "VLLM_API_KEY"])
def test_offline_variables_and_the_key_cannot_be_set_in_env(name):
    assert "vllm_server_env: %s" % name in _errors(env={name: "0"})


def test_gpu_sets_must_not_overlap():
    models = [{"name": "demo", "port": 8000, "gpus": [0, 1]}, {"name": "other", "port": 8001, "gpus": [1]}]
    assert "GPU nvidia.com/gpu=1 is already given to vllm_server_models[0] 'demo'" in _errors(models=models)
    models = [{"name": "demo", "port": 8000, "gpus": "all"}, {"name": "other", "port": 8001, "gpus": 2}]
    assert "is already given to" in _errors(models=models)
    models = [{"name": "demo", "port": 8000, "gpus": [0]}, {"name": "other", "port": 8001, "gpus": [1]}]
    assert _errors(models=models) == ""


@pytest.mark.parametrize("user", ["0", "0:0", "65534:0", "root", "nobody"])
def test_root_or_named_user_is_refused(user):
    assert "vllm_server_user" in _errors(user=user)


def test_unknown_model_key_and_bad_port_are_reported_together():
    err = _errors(models=[{"name": "demo", "port": 70000, "gpu": 1}])
    assert "unknown key(s) gpu" in err and "port 70000 must be a whole number" in err


def test_backend_address_outside_subnet_or_on_gateway_is_refused():
    assert "backend_address 10.99.0.5 must be a host address" in _errors(
        models=[{"name": "demo", "port": 8000, "backend_address": "10.99.0.5"}])
    assert "backend_address 10.213.0.1 must be a host address" in _errors(
        models=[{"name": "demo", "port": 8000, "backend_address": "10.213.0.1"}])


# ---------------------------------------------------------------- plan and rendering

def _plan(**over):
    return v.plan(_cfg(**over))


def test_plan_names_and_addresses():
    models = [{"name": "demo", "port": 8000}, {"name": "other", "port": 8001, "gpus": [0, "nvidia.com/gpu=1"]}]
    entries = _plan(models=models)
    assert [e["unit"] for e in entries] == ["vllm-demo.service", "vllm-other.service"]
    assert [e["container"] for e in entries] == ["vllm-demo", "vllm-other"]
    assert [e["backend_address"] for e in entries] == ["10.213.0.10", "10.213.0.11"]
    assert entries[0]["devices"] == [] and entries[1]["devices"] == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    assert entries[1]["model_dir"] == "/srv/models/other"


def test_plan_refuses_invalid_input():
    with pytest.raises(v.VllmConfigError) as exc:
        _plan(image="x:latest")
    assert "vllm_server_image" in str(exc.value)


def test_run_args_are_hardened_offline_and_keep_the_key_off_the_command_line():
    cfg = _cfg()
    entry = v.plan(cfg)[0]
    args = v.podman_run_args(entry, cfg)
    joined = " ".join(args)
    for needle in ("--cap-drop all", "--security-opt no-new-privileges", "--read-only", "--user 65534:65534",
                   "--volume /srv/models/demo:/models/demo:ro", "--network airgap-vllm", "--ip 10.213.0.10",
                   "--secret vllm-demo-api-key,type=env,target=VLLM_API_KEY", "--label airgap.vllm_server.model=demo",
                   "--tmpfs /tmp:rw,nosuid,nodev,noexec,size=1g"):
        assert needle in joined
    for key, value in v.OFFLINE_ENV:
        assert "--env %s=%s" % (key, value) in joined
    assert "--device" not in joined and "-p" not in args and "--publish" not in joined
    assert "--network host" not in joined
    assert entry["vllm_args"][:6] == ["--model", "/models/demo", "--served-model-name", "demo", "--host", "10.213.0.10"]
    assert "--trust-remote-code" not in entry["vllm_args"]


def test_gpus_become_cdi_devices():
    cfg = _cfg(models=[{"name": "demo", "port": 8000, "gpus": "all"}])
    assert "--device nvidia.com/gpu=all" in " ".join(v.podman_run_args(v.plan(cfg)[0], cfg))


def _unit_words(text, key):
    """The words of a (possibly continued) unit line, split the way systemd does for plain quoting."""
    joined = text.replace(" \\\n    ", " ")
    lines = [line for line in joined.splitlines() if line.startswith(key + "=")]
    return [shlex.split(line[len(key) + 1:]) for line in lines]


def test_plain_unit_gates_on_the_weights_check_before_podman_runs():
    cfg = _cfg(env={"NOTE": "100% sure $HOME"})
    entry = v.plan(cfg)[0]
    text = v.render_unit(entry, cfg)
    pre = _unit_words(text, "ExecStartPre")
    assert pre[0] == CHECK
    assert text.index("ExecStartPre=/usr/bin/python3") < text.index("ExecStart=/usr/bin/podman")
    start = _unit_words(text, "ExecStart")[0]
    assert start[:3] == ["/usr/bin/podman", "run", "--cidfile=%t/%n.ctr-id"]
    assert cfg["image"] in start and start.index(cfg["image"]) < start.index("--model")
    # % and $ are escaped for systemd, so the value reaches podman unchanged
    assert "NOTE=100%% sure $$HOME" in start
    assert "Restart=on-failure" in text and "Type=notify" in text
    assert "VLLM_API_KEY=" not in text


def test_unit_has_no_drop_in_conflicts_and_plain_names():
    text = v.render_unit(_plan()[0], _cfg())
    assert "isolation-monitor" not in text
    assert "[Install]\nWantedBy=multi-user.target" in text


def test_systemd_quote():
    assert v.systemd_quote("plain/path:ro") == "plain/path:ro"
    assert v.systemd_quote("a b") == '"a b"'
    assert v.systemd_quote('say "hi"') == '"say \\"hi\\""'
    assert shlex.split(v.systemd_quote("50% off")) == ["50%% off"]


def test_quadlet_carries_the_same_hardening_and_gate():
    cfg = _cfg(models=[{"name": "demo", "port": 8000, "gpus": [0]}])
    text = v.render_quadlet(v.plan(cfg)[0], cfg)
    sections = re.findall(r"^\[(\w+)\]$", text, re.M)
    assert sections == ["Unit", "Container", "Service", "Install"]
    for line in ("ContainerName=vllm-demo", "Image=" + cfg["image"], "DropCapability=all", "NoNewPrivileges=true",
                 "ReadOnly=true", "User=65534", "Group=65534", "Volume=/srv/models/demo:/models/demo:ro",
                 "Network=airgap-vllm", "Label=airgap.vllm_server.model=demo", "Environment=HF_HUB_OFFLINE=1"):
        assert line in text.splitlines()
    podman_args = [l for l in text.splitlines() if l.startswith("PodmanArgs=")][0]
    assert "--secret vllm-demo-api-key,type=env,target=VLLM_API_KEY" in podman_args
    assert "--device nvidia.com/gpu=0" in podman_args and "--ip 10.213.0.10" in podman_args
    assert _unit_words(text, "ExecStartPre")[0] == CHECK
    assert [l for l in text.splitlines() if l.startswith("Exec=")][0].startswith("Exec=--model /models/demo ")


def test_nginx_restricts_paths_and_listens_only_on_the_bind_address():
    entry = _plan()[0]
    text = v.render_nginx(entry)
    assert re.findall(r"^\s*listen (.*);$", text, re.M) == ["10.20.0.21:8000"]
    blocks = dict(re.findall(r"location (= /health|= /metrics|/v1/|/) \{(.*?)\n    \}", text, re.S))
    assert "allow 10.20.0.0/24;" in blocks["/v1/"] and "allow 10.10.0.0/24;" not in blocks["/v1/"]
    for path in ("= /health", "= /metrics"):
        assert "allow 10.10.0.0/24;" in blocks[path] and "allow 10.20.0.21;" in blocks[path]
        assert "allow 10.20.0.0/24;" not in blocks[path]
    for block in blocks.values():
        assert block.strip().splitlines()[-1].strip() != "allow all;"
        assert "deny all;" in block
    assert "proxy_pass" not in blocks["/"]
    assert "proxy_pass http://10.213.0.10:8000;" in blocks["/v1/"]


def test_nginx_ipv6_bind_address_is_bracketed():
    cfg = _cfg(bind_address="fd00:20::21",
               firewall_ingress_allow=[{"name": "i", "src": "fd00:20::/64", "proto": "tcp", "ports": [8000]}])
    assert "listen [fd00:20::21]:8000;" in v.render_nginx(v.plan(cfg)[0])


def test_nginx_config_is_accepted_by_nginx(tmp_path):
    nginx = "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        pytest.skip("nginx is not installed on this machine")
    entry = _plan(bind_address="10.20.0.21")[0]
    entry["bind_address"] = "127.0.0.1"  # nginx -t binds nothing, but resolves the address
    conf = tmp_path / "nginx.conf"
    conf.write_text("pid %s/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n%s\n}\n"
                    % (tmp_path, v.render_nginx(entry).replace("/var/log/nginx", str(tmp_path))))
    run = subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


# ---------------------------------------------------------------- evidence

STATUS_OK = "Uid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nCapInh:\t0000000000000000\n" \
            "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n" \
            "CapAmb:\t0000000000000000\nNoNewPrivs:\t1\n"


def _inspect(**over):
    data = {
        "State": {"Status": "running", "Pid": 42},
        "ImageName": "registry.lab.internal/vllm/vllm-openai@" + DIGEST,
        "Config": {"User": "65534:65534", "Labels": {"airgap.vllm_server.model": "demo"},
                   "Env": ["%s=%s" % kv for kv in v.OFFLINE_ENV] + ["VLLM_API_KEY=<redacted>"],
                   "Cmd": ["--model", "/models/demo", "--served-model-name", "demo"]},
        "HostConfig": {"CapDrop": ["CAP_CHOWN"], "CapAdd": [], "SecurityOpt": ["no-new-privileges"],
                       "ReadonlyRootfs": True, "Privileged": False, "NetworkMode": "bridge", "PortBindings": {}},
        "Mounts": [{"Type": "bind", "Source": "/srv/models/demo", "Destination": "/models/demo", "RW": False}],
        "NetworkSettings": {"Networks": {"airgap-vllm": {"IPAddress": "10.213.0.10"}}},
    }
    for key, value in over.items():
        section, _, field = key.partition("__")
        if field:
            data[section] = dict(data[section], **{field: value})
        else:
            data[section] = value
    return data


def _hardened(inspect=None, status=STATUS_OK, running=True):
    cfg = _cfg()
    return v.hardened_evidence(v.plan(cfg)[0], cfg, _inspect() if inspect is None else inspect, status, running)


def test_hardened_passes_on_a_hardened_container():
    status, evidence = _hardened()
    assert status == "pass", evidence["problems"]
    assert evidence["process_capabilities"]["CapEff"] == "0x0000000000000000"


@pytest.mark.parametrize("inspect,problem", [
    (_inspect(HostConfig__ReadonlyRootfs=False), "root filesystem is writable"),
    (_inspect(HostConfig__CapAdd=["CAP_NET_ADMIN"]), "capabilities added: CAP_NET_ADMIN"),
    (_inspect(HostConfig__SecurityOpt=[]), "no-new-privileges not set"),
    (_inspect(HostConfig__Privileged=True), "container is privileged"),
    (_inspect(HostConfig__PortBindings={"8000/tcp": [{"HostIp": "", "HostPort": "8000"}]}), "publishes ports"),
    (_inspect(Config__User=""), "(root)"),
    (_inspect(Mounts=[{"Type": "bind", "Source": "/srv/models/demo", "Destination": "/models/demo", "RW": True}]),
     "model mount /models/demo is writable"),
    (_inspect(NetworkSettings={"Networks": {"podman": {"IPAddress": "10.88.0.2"}}}), "attached to networks"),
    (_inspect(NetworkSettings={"Networks": {"host": {}}}), "uses the host network"),
    (_inspect(Config__Labels={}), "label airgap.vllm_server.model"),
])
def test_hardened_fails_on_each_weakness(inspect, problem):
    status, evidence = _hardened(inspect)
    assert status == "fail"
    assert any(problem in p for p in evidence["problems"]), evidence["problems"]


def test_an_exposed_but_unpublished_port_is_not_a_publication():
    status, evidence = _hardened(_inspect(HostConfig__PortBindings={"8000/tcp": None}))
    assert status == "pass", evidence["problems"]


def test_hardened_reads_capabilities_from_the_process_not_the_config():
    status, evidence = _hardened(status=STATUS_OK.replace("CapEff:\t0000000000000000", "CapEff:\t00000000a80425fb"))
    assert status == "fail"
    assert "process CapEff is 0xa80425fb, not 0 (capabilities left)" in evidence["problems"]
    status, evidence = _hardened(status=STATUS_OK.replace("NoNewPrivs:\t1", "NoNewPrivs:\t0"))
    assert "no_new_privs is ['0'], not 1" in evidence["problems"]


def test_hardened_fails_when_missing_or_stopped():
    assert _hardened(inspect={})[0] == "fail"
    status, evidence = _hardened(inspect=_inspect(State={"Status": "exited", "Pid": 0}), status="", running=False)
    assert status == "fail" and "container is not running (state exited)" in evidence["problems"]


PROBE_BLOCKED = {"results": [{"name": "canary tcp 443", "status": "blocked", "reason": "unreachable"}],
                 "summary": {"blocked": 1}}
LISTEN = ["10.20.0.21:8000", "127.0.0.1:22"]


def _offline(inspect=None, probe=PROBE_BLOCKED, listeners=LISTEN, digest=DIGEST):
    cfg = _cfg()
    return v.offline_evidence(v.plan(cfg)[0], cfg, _inspect() if inspect is None else inspect, probe, listeners, digest)


def test_offline_passes_and_never_shows_the_key():
    status, evidence = _offline()
    assert status == "pass", evidence["problems"]
    assert evidence["offline_env"]["HF_HUB_OFFLINE"] == "1"
    assert "VLLM_API_KEY" in evidence["env_names"]
    assert "<redacted>" not in json.dumps(evidence["offline_env"])


@pytest.mark.parametrize("kwargs,problem", [
    ({"inspect": _inspect(Config__Env=["HF_HUB_OFFLINE=0", "VLLM_API_KEY=x"])}, "HF_HUB_OFFLINE is '0', not '1'"),
    ({"inspect": _inspect(Config__Env=["%s=%s" % kv for kv in v.OFFLINE_ENV])}, "VLLM_API_KEY is not set"),
    ({"inspect": _inspect(Config__Cmd=["--model", "meta-llama/Llama-3-8B"])}, "not the local mount /models/demo"),
    ({"inspect": _inspect(Config__Cmd=["--model", "/models/demo", "--trust-remote-code"])}, "--trust-remote-code"),
    ({"probe": {"results": [{"name": "canary", "status": "reachable", "reason": "connected"}]}},
     "from the container: canary is reachable"),
    ({"probe": {"results": [{"name": "canary", "status": "error", "reason": "invalid"}]}}, "canary is error"),
    ({"probe": {}}, "no egress probe results"),
    ({"probe": {"results": PROBE_BLOCKED["results"] + [
        {"name": "own port", "status": "blocked", "reason": "timeout", "expect": "reachable"}]}},
     "positive control own port is blocked"),
    ({"listeners": ["0.0.0.0:8000"]}, "nothing listens on 10.20.0.21:8000"),
    ({"listeners": LISTEN + ["198.18.0.21:8000"]}, "port 8000 also listens on 198.18.0.21:8000"),
    ({"digest": "sha256:" + "00" * 32}, "container image digest"),
])
def test_offline_fails_on_each_breach(kwargs, problem):
    status, evidence = _offline(**kwargs)
    assert status == "fail"
    assert any(problem in p for p in evidence["problems"]), evidence["problems"]


def test_parse_listeners():
    text = "LISTEN 0 511 10.190.0.21:8000 0.0.0.0:*\nLISTEN 0 128 [::]:22 [::]:*\nLISTEN 0 5 fd00::1:9000 [::]:*\n"
    assert v.parse_listeners(text) == ["10.190.0.21:8000", "[::]:22", "[fd00::1]:9000"]


def test_records_filter_emits_two_valid_records_per_model_or_not_applicable():
    cfg = _cfg()
    entries = v.plan(cfg)
    facts = {"vllm-demo": {"inspect": _inspect(), "proc_status": STATUS_OK, "running": True, "image_digest": DIGEST,
                           "unit_active": "active"}}
    records = vllm_server_records(entries, cfg, facts, [PROBE_BLOCKED], "LISTEN 0 511 10.20.0.21:8000 0.0.0.0:*\n")
    assert [(r["id"], r["status"]) for r in records] == [("VLLM-HARDENED", "pass"), ("VLLM-OFFLINE", "pass")]
    for record in records:
        validate_record(record)
    empty = vllm_server_records([], cfg, {}, [], "")
    assert [r["status"] for r in empty] == ["not_applicable", "not_applicable"]
    missing = vllm_server_records(entries, cfg, {}, [], "")
    assert [r["status"] for r in missing] == ["fail", "fail"]


# ---------------------------------------------------------------- modules

def test_container_facts_redacts_every_value_but_the_offline_ones():
    sys.path.insert(0, os.path.join(ROOT, "library"))
    import vllm_container_facts as facts
    out = facts.redact({"Config": {"Env": ["VLLM_API_KEY=s3cret", "HF_HUB_OFFLINE=1", "OTHER=x=y"],
                                   "CreateCommand": ["podman", "run", "-e", "X=s3cret"]}})
    assert out["Config"]["Env"] == ["VLLM_API_KEY=<redacted>", "HF_HUB_OFFLINE=1", "OTHER=<redacted>"]
    assert "s3cret" not in json.dumps(out)


def test_secret_file_must_be_root_only(tmp_path):
    import vllm_secret
    key = tmp_path / "key"
    key.write_text("abc")
    os.chmod(str(key), 0o644)
    with pytest.raises(ValueError, match="mode 0600 or stricter"):
        vllm_secret.file_digest(str(key))
    os.chmod(str(key), 0o600)
    if os.geteuid() == 0:
        assert len(vllm_secret.file_digest(str(key))) == 64
    key.write_text("  \n")
    if os.geteuid() == 0:
        with pytest.raises(ValueError, match="is empty"):
            vllm_secret.file_digest(str(key))


def test_input_is_not_mutated():
    cfg = _cfg()
    before = copy.deepcopy(cfg)
    v.plan(cfg)
    assert cfg == before
