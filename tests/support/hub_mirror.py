#!/usr/bin/python3
"""A Hugging Face hub mirror for tests (what HF_ENDPOINT points at), serving the repos under --root
(<root>/<org>/<name>/<files>) with the hub's routes and headers:

  GET /api/models/{repo}/revision/{revision}[?blobs=true]  {"id", "sha", "siblings": [{"rfilename", "size",
      "blobId", "lfs": {"sha256", "size", "pointerSize"}}]}; 404 with X-Error-Code RepoNotFound / RevisionNotFound
  GET|HEAD /{repo}/resolve/{revision}/{file}  regular files: 200 with ETag (git blob sha1) and X-Repo-Commit;
      LFS files (*.safetensors, *.bin, *.nemo): 302 to /cdn/{sha256} with X-Linked-Etag, X-Linked-Size, X-Repo-Commit
  GET /cdn/{sha256}  the bytes, honouring "Range: bytes=N-" with 206 and Content-Range

The revision is "main" or the commit (the sha1 of the repo's file list). Faults for tests: --cut-once FILE
sends half of FILE's bytes once, then closes the connection; --corrupt FILE serves FILE with one byte
changed (its listing stays right); --hide FILE lists FILE but answers 404 for it; --delay S waits S seconds
before each file's bytes (so that concurrent downloads overlap); --token T wants
"Authorization: Bearer T". Every request is appended to --log as "METHOD PATH RANGE". Binds 127.0.0.1 on
a free port and writes "http://127.0.0.1:PORT" to --port-file once it listens; with --tls-cert and --tls-key
(a certificate for localhost) it speaks https and writes "https://localhost:PORT"."""
import argparse
import hashlib
import http.server
import json
import os
import re
import ssl
import sys
import threading
import time

LFS_SUFFIXES = (".safetensors", ".bin", ".nemo")


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, folder):
        self.files = {}
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            lfs = name.endswith(LFS_SUFFIXES)
            self.files[name] = {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                "blob": git_blob_sha1(data), "lfs": lfs}
        listing = "".join(f"{n}:{f['blob']}\n" for n, f in self.files.items())
        self.commit = hashlib.sha1(listing.encode()).hexdigest()


class Mirror(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, args):
        super().__init__(("127.0.0.1", 0), Handler)
        self.args = args
        self.repos = {}
        for org in sorted(os.listdir(args.root)):
            for name in sorted(os.listdir(os.path.join(args.root, org))):
                self.repos[f"{org}/{name}"] = Repo(os.path.join(args.root, org, name))
        self.by_sha = {f["sha256"]: (n, f) for r in self.repos.values() for n, f in r.files.items()}
        self.lock = threading.Lock()
        self.cut_done = False


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "hub-mirror"

    def log_message(self, fmt, *args):
        pass

    def record(self):
        with self.server.lock, open(self.server.args.log, "a") as log:
            log.write(f"{self.command} {self.path} {self.headers.get('Range', '-')}\n")

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message):
        self.reply(status, json.dumps({"error": message}).encode(),
                   {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message})

    def authorized(self):
        token = self.server.args.token
        if token and self.headers.get("Authorization") != f"Bearer {token}":
            self.error(401, "GatedRepo", "Invalid credentials in Authorization header")
            return False
        return True

    def repo_at(self, repo_id, revision):
        """The repo at `revision`, or None once an error has been answered (401, 404)."""
        if not self.authorized():
            return None
        repo = self.server.repos.get(repo_id)
        if repo is None:
            self.error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}.")
            return None
        if revision not in ("main", repo.commit):
            self.error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return repo

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.record()
        path = self.path.split("?")[0]
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)", path):
            if (repo := self.repo_at(m[1], m[2])) is None:
                return
            siblings = []
            for name, f in repo.files.items():
                s = {"rfilename": name, "size": f["size"], "blobId": f["blob"]}
                if f["lfs"]:
                    s["lfs"] = {"sha256": f["sha256"], "size": f["size"], "pointerSize": 134}
                siblings.append(s)
            body = json.dumps({"id": m[1], "modelId": m[1], "sha": repo.commit, "siblings": siblings}).encode()
            return self.reply(200, body, {"Content-Type": "application/json"})
        if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            if (repo := self.repo_at(m[1], m[2])) is None:
                return
            f = repo.files.get(m[3])
            if f is None or m[3] == self.server.args.hide:
                return self.error(404, "EntryNotFound", f"{m[3]} does not exist on \"{m[2]}\"")
            common = {"X-Repo-Commit": repo.commit}
            if f["lfs"]:
                return self.reply(302, b"", {**common, "Location": f"/cdn/{f['sha256']}", "X-Linked-Etag": f'"{f["sha256"]}"',
                                             "X-Linked-Size": str(f["size"]), "ETag": f'"{f["blob"]}"'})
            return self.send_content(m[3], f, {**common, "ETag": f'"{f["blob"]}"'})
        if m := re.fullmatch(r"/cdn/([0-9a-f]{64})", path):
            if m[1] not in self.server.by_sha:
                return self.error(404, "EntryNotFound", "no such object")
            name, f = self.server.by_sha[m[1]]
            return self.send_content(name, f, {"ETag": '"cdn-object"'})
        self.error(404, "RepoNotFound", f"no route {path}")

    def send_content(self, name, f, headers):
        time.sleep(self.server.args.delay)
        with open(f["path"], "rb") as file:
            data = bytearray(file.read())
        if name == self.server.args.corrupt and data:
            data[len(data) // 2] ^= 0xFF
        start = 0
        status = 200
        if r := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "")):
            start = int(r[1])
            if start >= len(data):
                return self.reply(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        body = bytes(data[start:])
        with self.server.lock:
            cut = name == self.server.args.cut_once and not self.server.cut_done and len(body) > 1
            self.server.cut_done |= cut
        if not cut:
            return self.reply(status, body, headers)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(2)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--cut-once")
    p.add_argument("--corrupt")
    p.add_argument("--hide")
    p.add_argument("--delay", type=float, default=0)
    p.add_argument("--token")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    args = p.parse_args()
    mirror = Mirror(args)
    url = f"http://127.0.0.1:{mirror.server_address[1]}"
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        mirror.socket = context.wrap_socket(mirror.socket, server_side=True)
        url = f"https://localhost:{mirror.server_address[1]}"
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(url + "\n")
    os.rename(tmp, args.port_file)
    mirror.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
