#!/usr/bin/env python3
"""registry_server.py - a small OCI distribution registry on 127.0.0.1 for the pull tests.

Serves ollama-style models built from one GGUF file: a config blob (ollama's JSON), the model
layer, a template layer and a params layer, with digests computed here:
  library/stories:latest   config A, model, template, params A
  alice/stories:v2         config B, model, template, params B   (shares model and template)
  library/badpath:latest   a manifest whose layer digest is a path trick
GET /v2/NS/NAME/manifests/TAG and GET /v2/NS/NAME/blobs/sha256:HEX (with Range: bytes=N-), under
any host name. The mode file, read on every request, changes the behaviour:
  ok       serve everything
  corrupt  the model blob's bytes are altered (its digest no longer matches)
  drop     the model blob's connection is closed half-way through the body
  baddigest the manifest's Docker-Content-Digest header is wrong
  long     the model blob has bytes past its size in the manifest
  norange  Range headers are ignored (200 and the whole blob)
  401, 500 every request is answered with that status
Each request is logged as "GET PATH range=RANGE accept=ACCEPT" to the log file; the digests are written as
JSON to --digests, the port to --port-file once listening.
"""
import argparse
import hashlib
import http.server
import json
import os
import socket
import socketserver
import threading


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def build(model_path):
    model = open(model_path, "rb").read()
    model_d, _ = blob(model)
    template_d, template = blob(b"{{ .Prompt }}")
    blobs = {model_d: model, template_d: template}
    manifests, digests = {}, {"model": model_d, "template": template_d}
    for key, ns, name, tag, params in (("a", "library", "stories", "latest", {"temperature": 0}),
                                       ("b", "alice", "stories", "v2", {"temperature": 1})):
        params_d, params_b = blob(json.dumps(params).encode())
        config = {"model_format": "gguf", "model_family": "llama", "model_families": ["llama"],
                  "model_type": "260K", "file_type": "F32", "architecture": "amd64",
                  "os": "linux", "rootfs": {"type": "layers",
                                            "diff_ids": [model_d, template_d, params_d]}}
        config_d, config_b = blob(json.dumps(config).encode())
        blobs.update({params_d: params_b, config_d: config_b})
        digests["params_" + key], digests["config_" + key] = params_d, config_d
        layers = [("application/vnd.ollama.image.model", model_d, model),
                  ("application/vnd.ollama.image.template", template_d, template),
                  ("application/vnd.ollama.image.params", params_d, params_b)]
        manifests[(ns, name, tag)] = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "digest": config_d, "size": len(config_b)},
            "layers": [{"mediaType": m, "digest": d, "size": len(b)} for m, d, b in layers]}
    bad = json.loads(json.dumps(manifests[("library", "stories", "latest")]))
    bad["layers"][0]["digest"] = "sha256:../../../../tmp/evil"
    manifests[("library", "badpath", "latest")] = bad
    return blobs, {k: json.dumps(v).encode() for k, v in manifests.items()}, digests


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, code, message):
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self.reply(status, body, [("Content-Type", "application/json")])

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range", "-")
        with open(srv.log, "a") as f:
            f.write(f"GET {self.path} range={rng} accept={self.headers.get('Accept', '-')}\n")
        mode = open(srv.mode_file).read().strip() if os.path.exists(srv.mode_file) else "ok"
        if mode in ("401", "500"):
            return self.error(int(mode), "UNAUTHORIZED" if mode == "401" else "INTERNAL",
                              "test server says no")
        parts = self.path.split("/")
        # /v2/NS/NAME/manifests/TAG or /v2/NS/NAME/blobs/DIGEST
        if len(parts) != 6 or parts[1] != "v2":
            return self.error(404, "NAME_UNKNOWN", "no such path")
        _, _, ns, name, kind, ref = parts
        if kind == "manifests":
            body = srv.manifests.get((ns, name, ref))
            if body is None:
                return self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            digest = "sha256:" + hashlib.sha256(body + (mode == "baddigest") * b"x").hexdigest()
            return self.reply(200, body, [
                ("Content-Type", "application/vnd.docker.distribution.manifest.v2+json"),
                ("Docker-Content-Digest", digest)])
        if kind != "blobs" or ref not in srv.blobs:
            return self.error(404, "BLOB_UNKNOWN", "blob unknown")
        data = srv.blobs[ref]
        is_model = ref == srv.digests["model"]
        if mode == "corrupt" and is_model:
            mid = len(data) // 2
            data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
        if mode == "long" and is_model:
            data = data + b"sixteen more bytes"
        start = 0
        if rng.startswith("bytes=") and rng.endswith("-") and mode != "norange":
            start = int(rng[6:-1])
            if start >= len(data):
                return self.error(416, "RANGE", "range not satisfiable")
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "drop" and is_model:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a dropped connection is the point of the drop mode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--mode-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--digests", required=True)
    ap.add_argument("--lifetime", type=float, default=600, help="exit after this many seconds")
    a = ap.parse_args()
    # a test killed before its cleanup must not leave the server behind
    threading.Timer(a.lifetime, os._exit, [0]).start()
    srv = Server(("127.0.0.1", 0), Handler)
    srv.blobs, srv.manifests, srv.digests = build(a.model)
    srv.mode_file, srv.log = a.mode_file, a.log
    with open(a.digests, "w") as f:
        json.dump(srv.digests, f)
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(a.port_file + ".tmp", a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
